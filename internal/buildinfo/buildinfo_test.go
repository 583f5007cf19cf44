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
			Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: "ff"}, {Key: "vcs.modified", Value: "true"}},
		}, "rgw-nats (devel)\n  module:   m\n  revision: ff (modified)\n  go:       go1.26.0\n"},
		{"nothing recorded", debug.BuildInfo{}, "rgw-nats unknown\n  revision: unknown\n  go:       unknown\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(&tc.bi).String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
