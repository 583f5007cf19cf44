package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Every payload file in the directory is embedded, and is JSON.
func TestNamesCoverTheDirectory(t *testing.T) {
	onDisk, _ := filepath.Glob("*.json")
	deeper, _ := filepath.Glob("*/*.json")
	onDisk = append(onDisk, deeper...)
	names := Names()
	if len(names) != len(onDisk) || len(names) < 12 {
		t.Fatalf("embedded %d payloads, directory has %d", len(names), len(onDisk))
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.FromSlash(n))
		if err != nil || string(b) != string(Read(n)) {
			t.Errorf("%s: embedded copy differs from the file (%v)", n, err)
		}
		if !json.Valid(Read(n)) {
			t.Errorf("%s is not JSON", n)
		}
	}
}
