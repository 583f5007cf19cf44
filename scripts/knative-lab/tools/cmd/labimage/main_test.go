package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries lists the layer's tar entries: name -> mode, and file contents.
func entries(t *testing.T, bins, files []string) (map[string]int64, map[string]string, string) {
	t.Helper()
	l, entry, err := binLayer(bins, files)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	modes, data := map[string]int64{}, map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := modes[h.Name]; dup {
			t.Errorf("%s twice in the layer", h.Name)
		}
		modes[h.Name] = h.Mode
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			data[h.Name] = string(b)
		}
	}
	return modes, data, entry
}

func TestBinLayer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(bin, []byte("binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte("certs"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		bins, files []string
		entry       string
		modes       map[string]int64
		data        map[string]string
	}{
		{
			name:  "ko layout",
			bins:  []string{"controller=" + bin},
			entry: "/ko-app/controller",
			modes: map[string]int64{"ko-app/controller": 0o755, "tmp/": 0o1777, "var/run/ko/": 0o755},
			data:  map[string]string{"ko-app/controller": "binary"},
		},
		{
			name:  "Dockerfile layout",
			files: []string{"/rgw-nats=" + bin, "/etc/ssl/certs/ca-certificates.crt=" + ca},
			modes: map[string]int64{"rgw-nats": 0o700, "etc/": 0o755, "etc/ssl/": 0o755, "etc/ssl/certs/": 0o755, "etc/ssl/certs/ca-certificates.crt": 0o644},
			data:  map[string]string{"rgw-nats": "binary", "etc/ssl/certs/ca-certificates.crt": "certs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			modes, data, entry := entries(t, tt.bins, tt.files)
			if entry != tt.entry {
				t.Errorf("entry %q, want %q", entry, tt.entry)
			}
			for n, m := range tt.modes {
				if got, ok := modes[n]; !ok || got != m {
					t.Errorf("%s: mode %o (present %v), want %o", n, got, ok, m)
				}
			}
			for n, d := range tt.data {
				if data[n] != d {
					t.Errorf("%s: %q, want %q", n, data[n], d)
				}
			}
		})
	}
}

func TestBinLayerRejects(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ bins, files []string }{
		{bins: []string{"noequals"}},
		{bins: []string{"a/b=" + bin}},
		{bins: []string{"missing=" + filepath.Join(dir, "nope")}},
		{files: []string{"/etc/=" + bin}},
		{files: []string{"/../escape=" + bin}},
		{files: []string{"/dir=" + dir}},
	} {
		if _, _, err := binLayer(tt.bins, tt.files); err == nil {
			t.Errorf("bins %v files %v: no error", tt.bins, tt.files)
		} else if !strings.Contains(err.Error(), "-") {
			t.Errorf("error %q does not name the flag", err)
		}
	}
}
