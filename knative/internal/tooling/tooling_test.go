package tooling

import (
	"os"
	"path/filepath"
	"testing"
)

func TestName(t *testing.T) {
	for _, c := range []struct {
		tool Tool
		want string
	}{
		{Kustomize, "kustomize"}, // .../kustomize/v5: the major-version suffix is not the name
		{Kubeconform, "kubeconform"},
		{NATSServer, "nats-server"}, // .../nats-server/v2
		{Tool{"example.org/x/cmd/v2tool", "v1.0.0"}, "v2tool"},
		{Tool{"example.org/x/v10", "v10.0.0"}, "x"},
	} {
		if got := c.tool.Name(); got != c.want {
			t.Errorf("%s: Name() = %q, want %q", c.tool.Package, got, c.want)
		}
	}
}

func TestCacheDirOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RGW_NATS_TOOLS", dir)
	got, err := CacheDir()
	if err != nil || got != dir {
		t.Fatalf("CacheDir() = %q, %v; want %q", got, err, dir)
	}
}

// TestPathUsesCache: an executable already in the cache is returned as is,
// without building (no go command, no network).
func TestPathUsesCache(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RGW_NATS_TOOLS", dir)
	t.Setenv("PATH", "") // building would fail: no go command
	tool := Tool{"example.org/cmd/fake", "v1.2.3"}
	exe := filepath.Join(dir, "fake@v1.2.3", "fake")
	if _, err := tool.Path(); err == nil {
		t.Fatal("Path succeeded with an empty cache and no go command")
	}
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := tool.Path()
	if err != nil || got != exe {
		t.Fatalf("Path() = %q, %v; want %q", got, err, exe)
	}
}
