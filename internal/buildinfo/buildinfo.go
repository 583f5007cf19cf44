// Package buildinfo says which build of rgw-nats is running: the module
// version and the VCS revision the Go toolchain stamped into the binary. The
// CLI prints it (`rgw-nats version`) and metrics can label with it.
//
// It reads runtime/debug only and must not import other packages of the
// module.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info describes one build. Fields the toolchain did not record (a test
// binary, `go run` outside a repository, -buildvcs=false) are empty.
type Info struct {
	Module    string // main module path
	Version   string // module version: a tag, a pseudo-version, or "(devel)"
	Revision  string // VCS commit the binary was built from
	Time      string // commit time, RFC 3339
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string // toolchain that built the binary
	Tags      string // build tags, e.g. nonatsserver (no embedded NATS server)
}

// revision names the commit when the go command could not stamp it: a
// Docker build context holds no .git, so scripts/build.sh passes it with
// -ldflags "-X github.com/rgw-nats/rgw-nats/internal/buildinfo.revision=...".
var revision string

// Read returns the running binary's build information.
func Read() Info {
	var i Info
	if bi, ok := debug.ReadBuildInfo(); ok {
		i = Parse(bi)
	}
	if i.Revision == "" {
		i.Revision = revision
	}
	return i
}

// Parse reads what Read reports from any build information, such as
// debug/buildinfo.ReadFile returns for another binary.
func Parse(bi *debug.BuildInfo) Info {
	i := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "-tags":
			i.Tags = s.Value
		}
	}
	return i
}

// String is the text of `rgw-nats version`: the version on the first line,
// then one line per known detail.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rgw-nats %s\n", orUnknown(i.Version))
	if i.Module != "" {
		fmt.Fprintf(&b, "  module:   %s\n", i.Module)
	}
	rev := orUnknown(i.Revision)
	if i.Modified {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "  revision: %s\n", rev)
	if i.Time != "" {
		fmt.Fprintf(&b, "  time:     %s\n", i.Time)
	}
	fmt.Fprintf(&b, "  go:       %s\n", orUnknown(i.GoVersion))
	if i.Tags != "" {
		fmt.Fprintf(&b, "  tags:     %s\n", i.Tags)
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
