package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// testConfig reads the defaults the way serve does, with the environment
// the test sets.
func testConfig(t *testing.T, env map[string]string) function.Config {
	t.Helper()
	t.Setenv("LISTEN_ADDRESS", "127.0.0.1:0")
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServe runs serveConfig in the background; the returned stop cancels
// it (what SIGTERM does) and waits for it to return.
func startServe(t *testing.T, cfg function.Config) (endpoints, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan endpoints, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- serveConfig(ctx, cfg, log, ready) }()
	select {
	case ep := <-ready:
		var once sync.Once
		var err error
		stop := func() error {
			once.Do(func() { cancel(); err = <-done })
			return err
		}
		t.Cleanup(func() { stop() })
		return ep, stop
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before it was ready: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("serve not ready within 15s")
	}
	return endpoints{}, nil
}

// fixtureFiles are the paths of every captured payload, for `send`.
func fixtureFiles(*testing.T) []string {
	var files []string
	for _, name := range events.Names() {
		files = append(files, "../../samples/events/"+name)
	}
	return files
}

// TestServeEmbedded is the first run on a bare machine: no NATS_URL, so the
// embedded server starts; every fixture sent with `send` arrives, and `tail`
// prints each as a CloudEvent.
func TestServeEmbedded(t *testing.T) {
	cfg := testConfig(t, map[string]string{
		"NATS_URL": "", "NATS_EMBEDDED_LISTEN": "127.0.0.1:0", "NATS_STORE_DIR": t.TempDir(),
	})
	ep, stop := startServe(t, cfg)

	for _, path := range []string{"/health/readiness", "/health/liveness"} {
		resp, err := http.Get("http://" + ep.HTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}

	files := fixtureFiles(t)
	t.Setenv("NATS_URL", ep.NATS)
	var tailOut, tailErr syncBuffer
	tailDone := make(chan error, 1)
	go func() {
		n := strconv.Itoa(len(files))
		tailDone <- run(context.Background(), []string{"tail", "-n", n, "-timeout", "10s"}, &tailOut, &tailErr)
	}()
	// tail prints its banner once subscribed.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(tailErr.String(), "tailing"); {
		if time.Now().After(deadline) {
			t.Fatal("tail did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var sendOut bytes.Buffer
	if err := run(context.Background(), append([]string{"send", "-url", "http://" + ep.HTTP + "/"}, files...), &sendOut, io.Discard); err != nil {
		t.Fatalf("send: %v\n%s", err, sendOut.String())
	}
	if got := strings.Count(sendOut.String(), "202 Accepted"); got != len(files) {
		t.Fatalf("send accepted %d of %d:\n%s", got, len(files), sendOut.String())
	}
	if err := <-tailDone; err != nil {
		t.Fatalf("tail: %v\n%s", err, tailOut.String())
	}
	out := tailOut.String()
	for _, want := range []string{"--- rgw.nb-main.ObjectCreated.Put", "type:    com.amazonaws.ObjectCreated:Put", "bucket: xraylab-0001", "subject: demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg", `"eventName": "ObjectRemoved:Delete"`} {
		if !strings.Contains(out, want) {
			t.Errorf("tail output lacks %q:\n%s", want, out)
		}
	}
	// The embedded server's stream captures the dead letters too.
	nc, err := nats.Connect(ep.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if name, err := js.StreamNameBySubject(t.Context(), "rgwnats.deadletter.x"); err != nil || name != "RGW" {
		t.Errorf("dead letters are captured by %q (%v), want the embedded server's stream RGW", name, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// syncBuffer is a buffer one goroutine writes while another reads.
type syncBuffer = testutil.Buffer

// TestShutdownFinishesInFlight: a request whose body is still arriving when
// SIGTERM comes completes with 202 and its event reaches NATS.
func TestShutdownFinishesInFlight(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	s := natsserver.RunServer(&opts)
	defer s.Shutdown()
	cfg := testConfig(t, map[string]string{"NATS_URL": s.ClientURL()})
	ep, stop := startServe(t, cfg)

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ch := make(chan *nats.Msg, 4)
	nc.ChanSubscribe("rgw.>", ch)
	nc.Flush()

	body, err := os.ReadFile("../../samples/events/reef-put-capture.json")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+ep.HTTP+"/", pr)
	req.ContentLength = int64(len(body))
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	pw.Write(body[:100])
	time.Sleep(100 * time.Millisecond) // the request is in flight

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond) // SIGTERM has arrived
	select {
	case err := <-stopped:
		t.Fatalf("serve returned with a request in flight: %v", err)
	default:
	}
	pw.Write(body[100:])
	pw.Close()

	if code := <-answered; code != 202 {
		t.Fatalf("in-flight request answered %d, want 202", code)
	}
	select {
	case m := <-ch:
		ev, err := binding.Decode(m)
		if err != nil || ev.Subject() != "notification.json" {
			t.Fatalf("got %v %v", ev, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight event never reached NATS")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get("http://" + ep.HTTP + "/health/liveness"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// TestHelpListsEveryVariable: --help names every variable of the
// configuration with its default.
func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[function.Config]()) {
		name := f.Tag.Get("env")
		if name == "" {
			continue // the embedded service.Settings: its fields follow
		}
		if !strings.Contains(out.String(), "  "+name) {
			t.Errorf("--help does not list %s", name)
		}
		if def := f.Tag.Get("default"); def != "" && !strings.Contains(out.String(), name+" (default "+def+")") {
			t.Errorf("--help does not show the default of %s (%s)", name, def)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, io.Discard, &errOut)
	if err == nil || exitCode(err) != 2 || !strings.Contains(errOut.String(), "Usage:") {
		t.Fatalf("err %v, exit %d, stderr %q", err, exitCode(err), errOut.String())
	}
}

func TestContentTypeOf(t *testing.T) {
	for body, want := range map[string]string{
		`{"Records":[]}`:                     "application/json",
		`{"specversion":"1.0","id":"x"}`:     "application/cloudevents+json",
		` [{"specversion":"1.0"}]`:           "application/cloudevents-batch+json",
		`not json`:                           "application/json",
		`{"data":{"specversion":"nested"}} `: "application/json",
	} {
		if got := contentTypeOf([]byte(body)); got != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
}

// TestLuaTestCommand: a script author runs a sample on real payloads without
// NATS and sees what would be published where.
func TestLuaTestCommand(t *testing.T) {
	t.Setenv("LUA_HMAC_KEY", "k")
	var out bytes.Buffer
	err := run(context.Background(), []string{"lua", "test", "../../samples/lua/anonymize.lua",
		"../../samples/events/downstream-xraylab-put-capture.json", "../../samples/events/reef-put-capture.json"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"event 1613700188.340170.819c1e1c1b4c7b9853301ba2e6c300f1.xray-images: published",
		"downstream-xraylab-put-capture.json: 1 message(s)",
		"--> rgw.xraylab-0001.ObjectCreated.Put",
		`"subject": "demo_XXX_`,
		"--> rgw.jayanth.ObjectCreated.Put",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Micheal") {
		t.Errorf("patient name in the output:\n%s", got)
	}

	// The filter sample drops what is not a new image; a failing script is an
	// error with a non-zero exit.
	out.Reset()
	if err := run(context.Background(), []string{"lua", "test", "../../samples/lua/filter.lua", "../../samples/events/pacific-16.2.15/delete.json"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), ": dropped") {
		t.Fatalf("filter: %v\n%s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.lua")
	os.WriteFile(bad, []byte("function transform(ev) error('boom') end"), 0o644)
	out.Reset()
	if err := run(context.Background(), []string{"lua", "test", bad, "../../samples/events/reef-put-capture.json"}, &out, io.Discard); err == nil || !strings.Contains(out.String(), "boom") {
		t.Fatalf("failing script: %v\n%s", err, out.String())
	}
	if err := run(context.Background(), []string{"lua", "test"}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("lua test without a script: %v", err)
	}
}

// TestREADMELuaExample runs the README's Lua example as documented: it must
// keep working as the API evolves.
func TestREADMELuaExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## Lua transforms")
	_, rest, ok2 := strings.Cut(rest, "```lua\n")
	src, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no Lua example under ## Lua transforms")
	}
	script := filepath.Join(t.TempDir(), "example.lua")
	os.WriteFile(script, []byte(src), 0o644)
	t.Setenv("LUA_HMAC_KEY", "dev")
	var out bytes.Buffer
	err = run(context.Background(), []string{"lua", "test", script,
		"../../samples/events/reef-put-capture.json", "../../samples/events/pacific-16.2.15/delete.json"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"2 message(s)", "--> images.jayanth", "Priority: high", "--> public.images", `"team": "radiology"`, "main-removed: dropped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBuildWithoutEmbeddedServer: the nonatsserver build (a smaller image for
// clusters) says clearly that it needs NATS_URL, and works with one.
func TestBuildWithoutEmbeddedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "rgw-nats")
	build := exec.Command("go", "build", "-tags", "nonatsserver", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	bare := exec.Command(bin)
	bare.Env = append(os.Environ(), "NATS_URL=", "LISTEN_ADDRESS=127.0.0.1:0")
	out, err := bare.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "set NATS_URL") {
		t.Fatalf("without NATS_URL: err %v, output %q", err, out)
	}

	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	s := natsserver.RunServer(&opts)
	defer s.Shutdown()
	port := freeTCPPort(t)
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), "NATS_URL="+s.ClientURL(), "LISTEN_ADDRESS=127.0.0.1:"+port)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the nonatsserver build never became ready with NATS_URL set")
		}
	}
}

func freeTCPPort(t *testing.T) string { return strconv.Itoa(testutil.FreePort(t)) }
