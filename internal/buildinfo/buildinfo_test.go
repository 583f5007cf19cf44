package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{
			GoVersion: "go1.26.0",
			Main:      debug.Module{Path: "github.com/rgw-nats/rgw-nats", Version: "v1.2.3"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123abcd"},
				{Key: "vcs.time", Value: "2026-12-01T22:00:00Z"},
				{Key: "vcs.modified", Value: "false"},
			},
		}, "rgw-nats v1.2.3\n  module:   github.com/rgw-nats/rgw-nats\n  revision: 0123abcd\n  time:     2026-12-01T22:00:00Z\n  go:       go1.26.0\n"},
		{"dirty tree", debug.BuildInfo{
			GoVersion: "go1.26.0",
			Main:      debug.Module{Path: "m", Version: "(devel)"},
			Settings:  []debug.BuildSetting{{Key: "-tags", Value: "nonatsserver"}, {Key: "vcs.revision", Value: "ff"}, {Key: "vcs.modified", Value: "true"}},
		}, "rgw-nats (devel)\n  module:   m\n  revision: ff (modified)\n  go:       go1.26.0\n  tags:     nonatsserver\n"},
		{"nothing recorded", debug.BuildInfo{}, "rgw-nats unknown\n  revision: unknown\n  go:       unknown\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(&tc.bi).String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// A build without VCS stamping (a Docker context) reports the revision
// scripts/build.sh linked in; a stamped one keeps its own.
func TestReadFallsBackToLinkedRevision(t *testing.T) {
	defer func(old string) { revision = old }(revision)
	revision = "feedface"
	got := Read()
	if stamped := Parse(mustBuildInfo(t)).Revision; stamped != "" {
		if got.Revision != stamped {
			t.Errorf("revision %q, the binary is stamped %q", got.Revision, stamped)
		}
		return
	}
	if got.Revision != "feedface" {
		t.Errorf("revision %q, want the linked one", got.Revision)
	}
}

func mustBuildInfo(t *testing.T) *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build information in this test binary")
	}
	return bi
}
