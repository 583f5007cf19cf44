package knative_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the Lua copies under knative/ from samples/lua")

// TestLuaCopiesMatchSamples: kustomize reads no file outside a
// kustomization's directory, so the ConfigMap generators hold copies of
// samples/lua scripts. They must not drift from the tested samples; run
// `go test ./knative -run LuaCopies -update` after changing a sample.
func TestLuaCopiesMatchSamples(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".lua" {
			return err
		}
		n++
		sample := filepath.Join(repoRoot, "samples", "lua", d.Name())
		want, err := os.ReadFile(sample)
		if err != nil {
			t.Errorf("%s has no sample to copy (%v)", p, err)
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Equal(got, want) {
			return nil
		}
		if *update {
			return os.WriteFile(p, want, 0o644)
		}
		t.Errorf("%s differs from %s; run go test ./knative -run LuaCopies -update", p, sample)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no Lua script under knative/")
	}
}
