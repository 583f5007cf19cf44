// Package events holds the RGW notification payloads captured from real Ceph
// releases (Octopus, Pacific 16.2.15, Reef, Tentacle 20.2.4, a downstream lab) plus the
// documentation's example, embedded so that every test, fuzz seed and
// example of the repository reads the same set. The *.headers.txt files
// beside them are the HTTP headers RGW sent.
//
// It is data only: it must not import anything of this repository.
package events

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.json */*.json
var files embed.FS

// Names lists every payload as a slash-separated path relative to this
// directory (e.g. "pacific-16.2.15/delete.json"), sorted.
func Names() []string {
	var names []string
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			names = append(names, p)
		}
		return err
	})
	return names
}

// Read returns the payload called name, as RGW sent it. An unknown name is a
// bug in the caller, so it panics.
func Read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("events: " + err.Error())
	}
	return b
}

// All returns every payload keyed by its name (see Names).
func All() map[string][]byte {
	all := make(map[string][]byte)
	for _, name := range Names() {
		all[name] = Read(name)
	}
	return all
}
