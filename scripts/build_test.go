package scripts_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const repoRoot = ".."

// buildBinary runs scripts/build.sh from dir (the repository or a copy of
// it) for linux on this machine's architecture, with env added to the
// environment, and returns the output path.
func buildBinary(t *testing.T, dir string, env ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rgw-nats")
	cmd := exec.Command("bash", filepath.Join(dir, "scripts", "build.sh"), out)
	cmd.Env = append(append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS="), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, b)
	}
	return out
}

// TestBuildScriptMakesStaticStrippedBinary checks what the image relies on:
// the binary has no ELF interpreter and no dynamic section (it runs on
// scratch, without libc), no symbol table or DWARF (stripped), and no path
// of the build machine (-trimpath).
func TestBuildScriptMakesStaticStrippedBinary(t *testing.T) {
	bin := buildBinary(t, repoRoot)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("not an ELF executable: %v", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		t.Errorf("ELF type %v, want an executable", f.Type)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			t.Error("has an ELF interpreter: dynamically linked")
		case elf.PT_DYNAMIC:
			t.Error("has a dynamic segment: dynamically linked")
		}
	}
	for _, s := range f.Sections {
		switch {
		case s.Name == ".dynamic" || s.Name == ".interp":
			t.Errorf("has section %s: dynamically linked", s.Name)
		case s.Name == ".symtab":
			t.Error("has a symbol table: not stripped")
		case strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_"):
			t.Errorf("has DWARF section %s: not stripped", s.Name)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("imports libraries %v (%v)", libs, err)
	}
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(content, []byte(abs+"/")) {
		t.Errorf("contains the build path %s: not built with -trimpath", abs)
	}
	t.Logf("rgw-nats (linux/%s, static, stripped): %d bytes (%.1f MiB)", runtime.GOARCH, len(content), float64(len(content))/(1<<20))
}

// TestBinaryAnswersManifestProbes runs the built binary the way the
// Knative Service does (the probe paths are read from the manifest) and
// checks that readiness and liveness answer 200 once it runs, and that it
// exits cleanly on SIGTERM.
func TestBinaryAnswersManifestProbes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the linux binary")
	}
	raw := mustRead(t, repoRoot+"/knative/base/service.yaml")
	var probes struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						ReadinessProbe struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"readinessProbe"`
						LivenessProbe struct {
							HTTPGet struct{ Path string } `yaml:"httpGet"`
						} `yaml:"livenessProbe"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(raw, &probes); err != nil {
		t.Fatal(err)
	}
	c := probes.Spec.Template.Spec.Containers
	if len(c) != 1 || c[0].ReadinessProbe.HTTPGet.Path == "" || c[0].LivenessProbe.HTTPGet.Path == "" {
		t.Fatalf("knative/base/service.yaml: no probe paths in %+v", c)
	}

	bin := buildBinary(t, repoRoot)
	addr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDRESS="+addr,
		"NATS_URL=", // the embedded server: no NATS needed
		"NATS_EMBEDDED_LISTEN=127.0.0.1:0",
		"NATS_STORE_DIR="+t.TempDir(),
		"LUA_SCRIPT=",
		"LOG_LEVEL=warn",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("rgw-nats output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	waitFor200(t, base+c[0].ReadinessProbe.HTTPGet.Path, exited)
	waitFor200(t, base+c[0].LivenessProbe.HTTPGet.Path, exited)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("still running 40 s after SIGTERM")
	}
}

// dockerignore is the subset of .dockerignore syntax we use, applied the
// way Docker does: patterns match slash-separated paths relative to the
// context root (a leading "**/" at any depth), a match on a directory
// covers everything under it, "!" re-includes, and the last match wins.
type dockerignore []struct {
	pattern string
	include bool
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	var d dockerignore
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, repoRoot+"/.dockerignore")))
	supported := regexp.MustCompile(`^!?(\*\*/)?[A-Za-z0-9._*/-]+$`)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !supported.MatchString(line) || strings.Contains(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "**/"), "**") {
			t.Fatalf(".dockerignore: %q uses syntax this test does not implement", line)
		}
		include := strings.HasPrefix(line, "!")
		d = append(d, struct {
			pattern string
			include bool
		}{strings.TrimPrefix(line, "!"), include})
	}
	return d
}

func (d dockerignore) excluded(rel string) bool {
	excluded := false
	for _, p := range d {
		if matchDockerPattern(p.pattern, rel) {
			excluded = !p.include
		}
	}
	return excluded
}

// matchDockerPattern reports whether pattern matches rel or a parent of it.
func matchDockerPattern(pattern, rel string) bool {
	parts := strings.Split(rel, "/")
	anyDepth := strings.HasPrefix(pattern, "**/")
	pattern = strings.TrimPrefix(pattern, "**/")
	for start := 0; start < len(parts); start++ {
		if start > 0 && !anyDepth {
			break
		}
		for end := start + 1; end <= len(parts); end++ {
			if ok, _ := filepath.Match(pattern, strings.Join(parts[start:end], "/")); ok {
				return true
			}
		}
	}
	return false
}

// TestDockerBuildContext builds the binary from a copy of exactly what
// .dockerignore lets into the build context, as the Dockerfile's build
// stage does, so an ignore rule that drops a needed file fails here.
func TestDockerBuildContext(t *testing.T) {
	ignore := readDockerignore(t)
	ctx := t.TempDir()
	copied := 0
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.excluded(rel) {
			if d.IsDir() && !ignore.hasReinclude(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctx, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		copied++
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{".git", "knative", "scripts/demo.sh", "Dockerfile", "scripts/build_test.go"} {
		if _, err := os.Stat(filepath.Join(ctx, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is in the build context; .dockerignore should keep it out", gone)
		}
	}
	for _, needed := range []string{"go.mod", "go.sum", "scripts/build.sh", "cmd/rgw-nats"} {
		if _, err := os.Stat(filepath.Join(ctx, needed)); err != nil {
			t.Errorf("%s is not in the build context: %v", needed, err)
		}
	}
	// No .git in the context: the commit comes from the build argument.
	const rev = "0123456789abcdef0123456789abcdef01234567"
	bin := buildBinary(t, ctx, "REVISION="+rev)
	t.Logf("built from a context of %d files", copied)
	if runtime.GOOS == "linux" {
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.Contains(string(out), "\n  revision: "+rev+"\n") {
			t.Errorf("rgw-nats version: %v\n%s", err, out)
		}
	}
}

// hasReinclude reports whether a "!" rule could bring back something under
// dir, so the walk must look inside it.
func (d dockerignore) hasReinclude(dir string) bool {
	for _, p := range d {
		if p.include && strings.HasPrefix(p.pattern, dir+"/") {
			return true
		}
	}
	return false
}

// TestDockerfile checks the Dockerfile's shape, since no Docker engine runs
// here: the build stage runs scripts/build.sh with a Go at least as new as
// go.mod wants, and the final stage is a minimal base with CA certificates,
// a non-root user, LISTEN_ADDRESS=[::]:8080 and an exec-form entrypoint (no
// shell needed at run time).
func TestDockerfile(t *testing.T) {
	type stage struct {
		from  string
		lines []string
	}
	var stages []stage
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, repoRoot+"/Dockerfile")))
	var cont string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, cont = cont+line, ""
		instr, args, _ := strings.Cut(line, " ")
		if strings.EqualFold(instr, "FROM") {
			stages = append(stages, stage{from: args})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before FROM", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, strings.ToUpper(instr)+" "+args)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage Dockerfile, got %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	m := regexp.MustCompile(`golang:(\d+\.\d+)`).FindStringSubmatch(build.from)
	if m == nil {
		t.Fatalf("build stage FROM %q: want a golang:X.Y image", build.from)
	}
	goVersion := strings.TrimPrefix(regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindString(string(mustRead(t, repoRoot+"/go.mod"))), "go ")
	if m[1] != goVersion {
		t.Errorf("build stage uses Go %s, go.mod says go %s", m[1], goVersion)
	}
	if !containsLine(build.lines, `^RUN .*scripts/build\.sh /out/rgw-nats`) {
		t.Errorf("build stage does not run scripts/build.sh: %q", build.lines)
	}

	if !regexp.MustCompile(`^(scratch|\S+/distroless/static\S*)$`).MatchString(final.from) {
		t.Errorf("final stage FROM %q: want scratch or distroless static", final.from)
	}
	if containsLine(final.lines, `^RUN `) {
		t.Error("final stage has RUN: it must not need a shell")
	}
	if !containsLine(final.lines, `^COPY --from=\S+ /etc/ssl/certs/ca-certificates\.crt /etc/ssl/certs/`) && final.from == "scratch" {
		t.Error("final stage has no CA certificates (NATS over TLS needs them)")
	}
	user := regexp.MustCompile(`^USER (\d+)(:(\d+))?$`)
	users := 0
	for _, l := range final.lines {
		if m := user.FindStringSubmatch(l); m != nil {
			users++
			if m[1] == "0" || m[3] == "0" {
				t.Errorf("%s: runs as root", l)
			}
		} else if strings.HasPrefix(l, "USER ") {
			t.Errorf("%s: use a numeric uid:gid, so runAsNonRoot can verify it", l)
		}
	}
	if users == 0 {
		t.Error("final stage sets no USER: it would run as root")
	}
	if !containsLine(final.lines, `^ENV LISTEN_ADDRESS=\[::\]:8080$`) {
		t.Error("final stage does not set LISTEN_ADDRESS=[::]:8080")
	}
	if !containsLine(final.lines, `^ENTRYPOINT \["/rgw-nats"\]$`) {
		t.Errorf("final stage: want the exec-form ENTRYPOINT [\"/rgw-nats\"], got %q", final.lines)
	}
}

func containsLine(lines []string, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range lines {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor200 polls url until it answers 200, failing if the process exits
// first or after a generous bound (a hang guard, not a speed check).
func waitFor200(t *testing.T, url string, exited chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("exited before %s answered 200: %v", url, err)
		case <-ctx.Done():
			t.Fatalf("%s: no 200 within 30 s (last: %v)", url, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
