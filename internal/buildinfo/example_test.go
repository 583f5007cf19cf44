package buildinfo_test

import (
	"fmt"
	"runtime/debug"

	"github.com/rgw-nats/rgw-nats/internal/buildinfo"
)

// A binary built from a git clone with uncommitted changes.
func ExampleParse() {
	info := buildinfo.Parse(&debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/rgw-nats/rgw-nats", Version: "v0.3.1-0.20261201220000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-01T22:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	})
	fmt.Print(info)
	// Output:
	// rgw-nats v0.3.1-0.20261201220000-0123456789ab+dirty
	//   module:   github.com/rgw-nats/rgw-nats
	//   revision: 0123456789abcdef0123456789abcdef01234567 (modified)
	//   time:     2026-12-01T22:00:00Z
	//   go:       go1.26.0
}
