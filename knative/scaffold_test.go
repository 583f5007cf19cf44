package knative_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

// funcGoVersion is the knative.dev/func-go release the scaffolding test
// builds against (func's Go middleware: it serves New()'s value).
const funcGoVersion = "v0.22.0"

// TestFuncScaffoldingDetectsInstanced repeats what func's Go scaffolding
// does before building: look at the top-level .go files next to func.yaml
// for package-level New and Handle. Exactly New must be there, or func
// refuses the function ("both signatures") or picks the static one.
func TestFuncScaffoldingDetectsInstanced(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]string{}
	for _, f := range files {
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && (fd.Name.Name == "New" || fd.Name.Name == "Handle") {
				found[fd.Name.Name] = append(found[fd.Name.Name], filepath.Base(f))
			}
		}
	}
	if len(found["New"]) != 1 || len(found["Handle"]) != 0 {
		t.Fatalf("top-level New in %v, Handle in %v: func needs exactly one New and no Handle", found["New"], found["Handle"])
	}
}

// scaffoldMain is a main package shaped like the one func generates for an
// instanced HTTP function: it hands New()'s value to func-go, which serves
// it on LISTEN_ADDRESS with the /health/* paths and calls Start and Stop.
const scaffoldMain = `package main

import (
	"fmt"
	"os"

	fn "knative.dev/func-go/http"

	f "%s"
)

func main() {
	if err := fn.Start(f.New()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// TestFuncScaffoldingBuildsAndServes builds rgw-nats the way `func build`
// does (a separate main module that links the function's root through a
// symlink and a replace directive, and imports it by its module path) and
// then runs the result against a real NATS server: ready on func-go's health
// path, an RGW POST published, a clean exit on SIGTERM.
func TestFuncScaffoldingBuildsAndServes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module (needs knative.dev/func-go from the module proxy or cache)")
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	// The scaffolding requires the function by its own module path and Go
	// version (as func does since knative/func#2769; with any other name the
	// function's imports of its own packages would not resolve).
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.GoVersion}}")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	modPath, goVersion, _ := strings.Cut(strings.TrimSpace(string(out)), " ")

	dir := t.TempDir()
	if err := os.Symlink(root, filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	mod := fmt.Sprintf("module scaffold\n\ngo %s\n\nrequire (\n\t%s v0.0.0-00010101000000-000000000000\n\tknative.dev/func-go %s\n)\n\nreplace %s => ./f\n",
		goVersion, modPath, funcGoVersion, modPath)
	write(t, filepath.Join(dir, "go.mod"), mod)
	write(t, filepath.Join(dir, "go.sum"), string(mustRead(t, filepath.Join(root, "go.sum"))))
	write(t, filepath.Join(dir, "main.go"), fmt.Sprintf(scaffoldMain, modPath))
	goCmd(t, dir, "mod", "tidy")
	bin := filepath.Join(dir, "function")
	goCmd(t, dir, "build", "-o", bin, ".")

	// Run it as func's image would: LISTEN_ADDRESS set, NATS elsewhere.
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	ns := natsserver.RunServer(&opts)
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("rgw.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDRESS="+addr,
		"NATS_URL="+ns.ClientURL(),
		"NATS_MODE=core",
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
			t.Logf("function output:\n%s", logs.String())
		}
	})

	base := "http://" + addr
	waitFor200(t, base+"/health/readiness", exited)
	if code := get(t, base+"/health/liveness"); code != http.StatusOK {
		t.Fatalf("liveness: %d", code)
	}
	resp, err := http.Post(base+"/", "application/json", bytes.NewReader(mustRead(t, repoRoot+"/samples/events/pacific-16.2.15/persistent-put.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST of an RGW notification: %s", resp.Status)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("nothing published on rgw.>: %v", err)
	}
	if !strings.HasPrefix(msg.Subject, "rgw.nb-persist.") {
		t.Errorf("published on %s, want rgw.nb-persist.*", msg.Subject)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second): // func-go's own shutdown bound is 30 s
		t.Fatal("still running 40 s after SIGTERM")
	}
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// goCmd runs the go command in dir, outside this module's workspace.
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor200 polls url until it answers 200, failing if the process exits
// first or nothing answers within a generous bound (a hang guard, not a
// speed check).
func waitFor200(t *testing.T, url string, exited chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("exited before %s answered 200: %v", url, err)
		case <-ctx.Done():
			t.Fatalf("%s: no 200 within 30 s (last error %v)", url, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
