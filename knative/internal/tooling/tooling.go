// Package tooling builds the pinned command-line tools the packaging tests
// run (kustomize, kubeconform, nats-server) once per machine into a cache
// directory, so that plain `go test ./...` is enough on a fresh clone and the
// tools never enter the main module's go.mod.
//
// It is for tests and scripts only: nothing in the service may import it,
// and it must not import anything of this repository.
package tooling

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Tool is one Go command pinned to a module version.
type Tool struct {
	Package string // import path of the main package
	Version string // module version, e.g. "v0.8.0"
}

// The pinned tools. Their versions are part of what the tests check: a newer
// kustomize or kubeconform may accept or reject different manifests.
var (
	Kustomize   = Tool{"sigs.k8s.io/kustomize/kustomize/v5", "v5.7.1"}
	Kubeconform = Tool{"github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0"}
	NATSServer  = Tool{"github.com/nats-io/nats-server/v2", "v2.15.2"}
)

// Name is the executable's file name, which `go install` derives from the
// last element of the package path that is not a major-version suffix.
func (t Tool) Name() string {
	name := path.Base(t.Package)
	if isMajorSuffix(name) {
		name = path.Base(path.Dir(t.Package))
	}
	return name
}

func isMajorSuffix(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// CacheDir is where tools are installed: $RGW_NATS_TOOLS if set, else
// rgw-nats/tools under the user's cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("RGW_NATS_TOOLS"); d != "" {
		return filepath.Abs(d)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("tooling: no cache directory (set RGW_NATS_TOOLS): %w", err)
	}
	return filepath.Join(base, "rgw-nats", "tools"), nil
}

// Path returns the executable of t, building it with `go install` first if it
// is not in the cache yet. Concurrent callers (parallel test binaries) are
// serialised with a lock file, so a tool is built once per machine.
func (t Tool) Path() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	// One directory per version: a version bump builds next to the old one.
	binDir := filepath.Join(dir, t.Name()+"@"+t.Version)
	exe := filepath.Join(binDir, t.Name())
	if isExecutable(exe) {
		return exe, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("tooling: %w", err)
	}
	unlock, err := lock(filepath.Join(dir, t.Name()+"@"+t.Version+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(exe) { // built by whoever held the lock before us
		return exe, nil
	}

	// Install into a fresh directory and rename it into place, so that a
	// build killed half way never leaves a truncated executable behind.
	tmp, err := os.MkdirTemp(dir, t.Name()+".build-")
	if err != nil {
		return "", fmt.Errorf("tooling: %w", err)
	}
	defer os.RemoveAll(tmp)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("tooling: building %s needs the go command: %w", t.Name(), err)
	}
	cmd := exec.Command(goCmd, "install", t.Package+"@"+t.Version)
	cmd.Dir = tmp // outside any module: `go install pkg@version` ignores go.mod anyway
	cmd.Env = append(withoutGoFlags(os.Environ()), "GOBIN="+tmp, "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tooling: go install %s@%s: %w\n%s", t.Package, t.Version, err, out)
	}
	if err := os.RemoveAll(binDir); err != nil {
		return "", fmt.Errorf("tooling: %w", err)
	}
	if err := os.Rename(tmp, binDir); err != nil {
		return "", fmt.Errorf("tooling: %w", err)
	}
	if !isExecutable(exe) {
		return "", fmt.Errorf("tooling: go install %s@%s produced no %s", t.Package, t.Version, exe)
	}
	return exe, nil
}

// withoutGoFlags drops GOFLAGS, which the caller may have set for its own
// module (-mod=vendor and the like would break `go install pkg@version`).
func withoutGoFlags(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GOFLAGS=") {
			out = append(out, kv)
		}
	}
	return out
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lock takes an exclusive flock on p, waiting for other holders.
func lock(p string) (unlock func(), err error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tooling: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tooling: lock %s: %w", p, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
