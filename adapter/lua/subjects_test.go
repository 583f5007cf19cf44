package lua

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWithOnLoadReportsStaticSubjects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.lua")
	src := `
local nats = require("nats")
local rn = require("rgwnats")
function transform(ev)
  local c = nats.connect()
  c:connect()
  c:publish("Bucket_Notification", "x")
  rn.publish("audit.uploads", "y")
  ev.nats.subject = "images.new"
  local dyn = "built." .. ev.ext.bucket
  ev.nats.subject = dyn
  return ev
end`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []Loaded
	e, err := New(context.Background(), path, WithReload(0), WithOnLoad(func(l Loaded) { got = append(got, l) }))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(got) != 1 {
		t.Fatalf("%d loads reported", len(got))
	}
	want := []string{"Bucket_Notification", "audit.uploads", "images.new"}
	if !slices.Equal(got[0].Subjects, want) || !slices.Equal(got[0].Scripts, []string{"s.lua"}) {
		t.Errorf("loaded %+v, want subjects %v", got[0], want)
	}
	// A reload reports the new version's subjects.
	os.WriteFile(path, []byte(`function transform(ev) ev.nats.subject = "other.x" return ev end`), 0o644)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got[1].Subjects, []string{"other.x"}) {
		t.Errorf("after reload: %+v", got)
	}
}
