package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
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

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/function"
	rgwbuild "github.com/rgw-nats/rgw-nats/internal/buildinfo"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestHelpExitsZero: every command's -h and --help print its usage on
// stdout and succeed; a bad flag is a usage error (exit 2) on stderr.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"send"}, {"tail"}, {"replay"}, {"lua"}, {"lua", "test"}, {"version"}} {
		for _, h := range []string{"-h", "--help", "-help"} {
			name := strings.Join(append(cmd, h), " ")
			var out, errOut bytes.Buffer
			err := run(context.Background(), append(cmd[:len(cmd):len(cmd)], h), &out, &errOut)
			if err != nil || exitCode(err) == 2 {
				t.Errorf("%s: %v", name, err)
			}
			if !strings.HasPrefix(out.String(), "Usage: rgw-nats") || errOut.Len() != 0 {
				t.Errorf("%s: stdout %q, stderr %q", name, out.String(), errOut.String())
			}
		}
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(cmd[:len(cmd):len(cmd)], "-no-such-flag"), &out, &errOut)
		if exitCode(err) != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "Usage: rgw-nats") {
			t.Errorf("%s -no-such-flag: err %v, stdout %q, stderr %q", cmd, err, out.String(), errOut.String())
		}
	}
}

// TestVersionCommand: `version`, `--version` and `-version` print the same
// build description, and only that.
func TestVersionCommand(t *testing.T) {
	want := rgwbuild.Read().String()
	for _, arg := range []string{"version", "--version", "-version"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if out.String() != want || !strings.HasPrefix(want, "rgw-nats ") {
			t.Errorf("%s printed %q, want %q", arg, out.String(), want)
		}
	}
	if err := run(context.Background(), []string{"version", "extra"}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("version extra: %v", err)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// cliBinary builds the command once (without the embedded server: the CLI
// does not need it and the build is faster), stamped with VCS information
// when the checkout has it.
func cliBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "rgw-nats-cli-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "rgw-nats")
		build := exec.Command("go", "build", "-buildvcs=auto", "-tags", "nonatsserver", "-o", binPath, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestBinaryVersionAndExitCodes runs the built binary: --version prints
// exactly what the toolchain stamped into it (and, from a git clone, the
// checked-out commit), -h exits 0, an unknown command exits 2.
func TestBinaryVersionAndExitCodes(t *testing.T) {
	bin := cliBinary(t)
	stamped, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := rgwbuild.Parse(stamped)
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if string(out) != want.String() {
			t.Errorf("%s printed\n%s\nthe binary holds\n%s", arg, out, want)
		}
	}
	if want.GoVersion == "" || want.Module != "github.com/rgw-nats/rgw-nats" || want.Tags != "nonatsserver" {
		t.Errorf("build info lacks the module, Go version or build tags: %+v", want)
	}
	// A git worktree (.git is a file) gets no VCS stamp from the go
	// command; a clone does, and then it must be the checked-out commit.
	if want.Revision != "" {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err == nil && want.Revision != strings.TrimSpace(string(head)) {
			t.Errorf("revision %s, HEAD is %s", want.Revision, head)
		}
	} else {
		t.Logf("no VCS stamp in this checkout; version prints %q", want.String())
	}

	for _, args := range [][]string{{"send", "-h"}, {"tail", "-h"}, {"replay", "--help"}, {"lua", "test", "-h"}, {"-h"}, {"serve", "--help"}} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "Usage") {
			t.Errorf("%v: %v, %q", args, err, out)
		}
	}
	err = exec.Command(bin, "frobnicate").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("unknown command: %v", err)
	}
}

// jetStreamServer runs a real nats-server with JetStream and a stream RGW
// that holds both the events and the dead letters.
func jetStreamServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "RGW", Subjects: []string{"rgw.>", "rgwnats.deadletter.>"},
	}); err != nil {
		t.Fatal(err)
	}
	return s, js
}

// startTail runs `tail ARGS...` in the background and returns once it has
// subscribed.
func startTail(t *testing.T, args ...string) (out, errOut *syncBuffer, done <-chan error) {
	t.Helper()
	out, errOut = &syncBuffer{}, &syncBuffer{}
	ch := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { ch <- run(ctx, append([]string{"tail"}, args...), out, errOut) }()
	t.Cleanup(func() {
		cancel()
		<-ch
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "tailing"); {
		select {
		case err := <-ch:
			t.Fatalf("tail ended before subscribing: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail did not subscribe:\n%s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out, errOut, waitErr(ch)
}

// waitErr hands the result on and keeps it for the cleanup.
func waitErr(ch chan error) <-chan error {
	out := make(chan error, 1)
	go func() {
		err := <-ch
		out <- err
		ch <- err
	}()
	return out
}

func waitDone(t *testing.T, done <-chan error, out *syncBuffer) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tail: %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("tail did not finish:\n%s", out.String())
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../samples/events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cloudEventMsg is a structured CloudEvent as the adapter publishes it.
func cloudEventMsg(subj, id string) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Header.Set("Content-Type", "application/cloudevents+json")
	m.Header.Set("Nats-Msg-Id", id)
	m.Data = []byte(`{"specversion":"1.0","id":"` + id + `","type":"com.amazonaws.ObjectCreated:Put","source":"ceph:s3..photos","subject":"a.jpg","datacontenttype":"application/json","bucket":"photos","data":{"n":1}}`)
	return m
}

// deadLetterMsg is a dead letter the way CONTRACT.md describes it.
func deadLetterMsg(subj string, body []byte, contentType string, extra map[string]string) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set("Content-Type", contentType)
	m.Header.Set("Rgwnats-Reason", "script")
	m.Header.Set("Rgwnats-Error", `lua: transform.lua:3: boom (event 1612.xyz)`)
	m.Header.Set("Rgwnats-Event-Id", "1612.xyz")
	m.Header.Set("Rgwnats-Attempts", "3")
	m.Header.Set("Rgwnats-Script", "transform.lua")
	m.Header.Set("Rgwnats-Line", "3")
	for k, v := range extra {
		m.Header.Set(k, v)
	}
	return m
}

// TestTailWildcard: `tail '>'` on a JetStream server shows the event and the
// dead letter, readably, and none of the JetStream API traffic and acks
// that a wildcard also matches.
func TestTailWildcard(t *testing.T) {
	s, js := jetStreamServer(t)
	t.Setenv("NATS_URL", s.ClientURL())
	out, _, done := startTail(t, "-n", "2", "-timeout", "10s", ">")

	ctx := context.Background()
	if _, err := js.PublishMsg(ctx, cloudEventMsg("rgw.photos.ObjectCreated.Put", "ev-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "RGW"); err != nil { // more $JS.API traffic
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, deadLetterMsg("rgwnats.deadletter.photos", fixture(t, "reef-put-capture.json"), "application/json", nil)); err != nil {
		t.Fatal(err)
	}
	waitDone(t, done, out)
	got := out.String()
	for _, want := range []string{
		"--- rgw.photos.ObjectCreated.Put\n  id:      ev-1\n",
		"--- rgwnats.deadletter.photos  (dead letter)\n  reason:   script\n",
		"  error:    lua: transform.lua:3: boom (event 1612.xyz)\n",
		"  event id: 1612.xyz\n  attempts: 3\n  script:   transform.lua\n  line:     3\n",
		"  content-type: application/json\n  body:\n  {\n    \"Records\": [",
		`"eventName": "ObjectCreated:Put"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "_INBOX") || strings.Contains(got, "$JS") || strings.Contains(got, "not a CloudEvent") {
		t.Errorf("system traffic shown:\n%s", got)
	}
}

// TestTailNotCloudEvent: a message that is no CloudEvent keeps a one-line
// header and a one-line reason, whatever the decoder's error looks like.
func TestTailNotCloudEvent(t *testing.T) {
	var out bytes.Buffer
	m := received{Msg: &nats.Msg{Subject: "rgw.x", Data: []byte(`{"stream":"RGW","seq":1}`)}}
	printReceived(&out, m)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "--- rgw.x  (not a CloudEvent)" || !strings.HasPrefix(lines[1], "  error:   ") {
		t.Fatalf("got:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `"seq": 1`) {
		t.Errorf("payload not shown:\n%s", out.String())
	}
	_, err := binding.Decode(m.Msg)
	if err == nil || oneLine(err.Error()) != strings.TrimPrefix(lines[1], "  error:   ") {
		t.Errorf("reason %q is not the decoder's %v", lines[1], err)
	}
}

// TestTailStream: with --stream, tail replays what the stream holds from
// the start, from a sequence, or from a time, then follows new messages.
func TestTailStream(t *testing.T) {
	s, js := jetStreamServer(t)
	t.Setenv("NATS_URL", s.ClientURL())
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		id := "ev-" + strconv.Itoa(i)
		if _, err := js.PublishMsg(ctx, cloudEventMsg("rgw.photos.ObjectCreated.Put", id)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := js.Stream(ctx, "RGW")
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		subj  string
		first uint64 // first sequence shown
	}{
		{"all", []string{"--stream", "RGW"}, "", 1},
		{"seq", []string{"--stream", "RGW", "--seq", "2"}, "", 2},
		{"since time", []string{"--stream", "RGW", "--since", second.Time.Format(time.RFC3339Nano)}, "", 2},
		{"since age", []string{"--stream", "RGW", "--since", "1h"}, "", 1},
		{"subject", []string{"--stream", "RGW", "--seq", "3"}, "rgw.photos.>", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := info.State.LastSeq - tc.first + 2 // what is stored, plus one published while tailing
			args := append(tc.args, "-n", strconv.FormatUint(n, 10), "-timeout", "10s")
			if tc.subj != "" {
				args = append(args, tc.subj)
			}
			out, _, done := startTail(t, args...)
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "id:      ev-3"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("stored messages not replayed:\n%s", out.String())
				}
			}
			if _, err := js.PublishMsg(ctx, cloudEventMsg("rgw.photos.ObjectCreated.Put", "live-"+tc.name)); err != nil {
				t.Fatal(err)
			}
			waitDone(t, done, out)
			got := out.String()
			for seq := uint64(1); seq <= 3; seq++ {
				line := "--- rgw.photos.ObjectCreated.Put  #" + strconv.FormatUint(seq, 10) + " "
				if shown := strings.Contains(got, line); shown != (seq >= tc.first) {
					t.Errorf("#%d shown: %v, want %v:\n%s", seq, shown, seq >= tc.first, got)
				}
			}
			if !strings.Contains(got, "id:      live-"+tc.name) {
				t.Errorf("the new message was not followed:\n%s", got)
			}
		})
	}

	for _, args := range [][]string{{"--seq", "2"}, {"--stream", "RGW", "--seq", "2", "--since", "1m"}, {"--stream", "RGW", "--since", "yesterday"}} {
		if err := run(ctx, append([]string{"tail"}, args...), io.Discard, io.Discard); exitCode(err) != 2 {
			t.Errorf("tail %v: %v, want a usage error", args, err)
		}
	}
	if err := run(ctx, []string{"tail", "--stream", "NOPE"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), `stream "NOPE" not found`) {
		t.Errorf("missing stream: %v", err)
	}
}

// TestTailLogsReconnect: tail says when the connection is lost and when it
// is back, and keeps printing afterwards.
func TestTailLogsReconnect(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	s := natsserver.RunServer(&opts)
	port := s.Addr().(*net.TCPAddr).Port
	t.Setenv("NATS_URL", s.ClientURL())
	out, errOut, done := startTail(t, "-n", "1", "-timeout", "20s", "rgw.>")

	s.Shutdown()
	s.WaitForShutdown()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "nats disconnected"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no disconnect logged:\n%s", errOut.String())
		}
	}
	opts.Port = port
	s = natsserver.RunServer(&opts)
	defer s.Shutdown()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "nats reconnected"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect logged:\n%s", errOut.String())
		}
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The subscription is re-established with the reconnect; publish until
	// tail has it.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "id:      after"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing printed after the reconnect:\n%s", out.String())
		}
		nc.PublishMsg(cloudEventMsg("rgw.photos.ObjectCreated.Put", "after"))
		nc.Flush()
	}
	waitDone(t, done, out)
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"10m", now.Add(-10 * time.Minute), true},
		{"0s", now, true},
		{"2026-12-01T21:00:00Z", now.Add(-time.Hour), true},
		{"2026-12-01T21:00:00.5+01:00", time.Date(2026, 12, 1, 20, 0, 0, 5e8, time.UTC), true},
		{"-5m", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := parseSince(tc.in, now)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestReplayHeader(t *testing.T) {
	m := deadLetterMsg("rgwnats.deadletter.x", []byte(`{"a":1}`), "application/json", map[string]string{
		"Rgwnats-Http-Ce-Id":          "abc",
		"rgwnats-http-ce-specversion": "1.0",
		"Rgwnats-Http-Authorization":  "Bearer stolen",
		"Rgwnats-Http-Content-Length": "99",
	})
	h := replayHeader(received{Msg: m})
	want := http.Header{"Content-Type": {"application/json"}, "Ce-Id": {"abc"}, "Ce-Specversion": {"1.0"}}
	if len(h) != len(want) {
		t.Errorf("got %v, want %v", h, want)
	}
	for k, v := range want {
		if h.Get(k) != v[0] {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v[0])
		}
	}
	// Without a Content-Type the body says what it is.
	m.Header.Del("Content-Type")
	m.Data = []byte(`{"specversion":"1.0","id":"x"}`)
	if got := replayHeader(received{Msg: m}).Get("Content-Type"); got != "application/cloudevents+json" {
		t.Errorf("Content-Type %q", got)
	}
}

// storedEvents reads the CloudEvents stream RGW holds on rgw.>, by id.
func storedEvents(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "RGW", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"rgw.>"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	if info.NumPending == 0 {
		return ids
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		ev, err := binding.Decode(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			t.Fatalf("stored message on %s: %v", m.Subject(), err)
		}
		ids[ev.ID()]++
	}
	return ids
}

// TestReplay: dead letters stored in the stream go back through the real
// adapter; what it publishes lands in the stream once, however often the
// replay runs.
func TestReplay(t *testing.T) {
	s, js := jetStreamServer(t)
	cfg := testConfig(t, map[string]string{
		"NATS_URL": s.ClientURL(), "NATS_MODE": "jetstream", "NATS_STREAM": "RGW",
	})
	ep, _ := startServe(t, cfg)
	t.Setenv("NATS_URL", s.ClientURL())
	ctx := context.Background()

	// 1: a raw RGW POST; 2: a binary CloudEvent, its ce- headers saved as
	// Rgwnats-Http-*; 3: a CloudEvent no fix makes acceptable (400).
	dead := []*nats.Msg{
		deadLetterMsg("rgwnats.deadletter.jayanth", fixture(t, "reef-put-capture.json"), "application/json", nil),
		deadLetterMsg("rgwnats.deadletter._", []byte(`{"hello":"world"}`), "application/json", map[string]string{
			"Rgwnats-Http-Ce-Specversion": "1.0", "Rgwnats-Http-Ce-Id": "replayed-binary",
			"Rgwnats-Http-Ce-Type": "com.example.test", "Rgwnats-Http-Ce-Source": "/test",
		}),
		deadLetterMsg("rgwnats.deadletter.x", []byte(`{"specversion":"1.0"}`), "application/cloudevents+json", nil),
	}
	for _, m := range dead {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	url := "http://" + ep.HTTP + "/"

	var out bytes.Buffer
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url, "-n", "2"}, &out, io.Discard); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "#1 event 1612.xyz (script): 202 Accepted") || !strings.HasPrefix(lines[1], "#2 ") || !strings.Contains(lines[1], "202 Accepted") {
		t.Fatalf("replay printed:\n%s", out.String())
	}
	const rgwID = "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification"
	want := map[string]int{rgwID: 1, "replayed-binary": 1}
	if got := storedEvents(t, js); !mapsEqual(got, want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}

	// All of them, twice: the bad one is refused each time (exit 1), and
	// the others are not stored again.
	for range 2 {
		out.Reset()
		err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url}, &out, io.Discard)
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 of 3") {
			t.Fatalf("replay with a bad body: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "#3 event 1612.xyz (script): 400 Bad Request") {
			t.Errorf("the refusal is not shown:\n%s", out.String())
		}
	}
	if got := storedEvents(t, js); !mapsEqual(got, want) {
		t.Fatalf("after replaying again the stream holds %v, want %v", got, want)
	}

	// A body the adapter dead-letters again (RGW's, undecodable): replay
	// sends it once and stops; the new dead letter is left for the next run.
	ack, err := js.PublishMsg(ctx, deadLetterMsg("rgwnats.deadletter.x", []byte(`not json`), "application/json", nil))
	if err != nil {
		t.Fatal(err)
	}
	seq := strconv.FormatUint(ack.Sequence, 10)
	out.Reset()
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url, "--seq", seq}, &out, io.Discard); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "#"+seq+" ") || strings.Count(got, "\n") != 1 {
		t.Errorf("replay of #%s printed:\n%s", seq, got)
	}
	st, err := js.Stream(ctx, "RGW")
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.GetLastMsgForSubject(ctx, "rgwnats.deadletter.>")
	if err != nil || again.Sequence <= ack.Sequence || again.Header.Get("Rgwnats-Reason") == "" || string(again.Data) != "not json" {
		t.Errorf("no new dead letter after replaying #%s: %v %+v", seq, err, again)
	}

	// One by sequence, a dry run, and a range with nothing in it.
	out.Reset()
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--seq", "2", "-n", "1", "--dry-run", "--url", "http://127.0.0.1:1/"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "#2 event 1612.xyz (script): would POST 17 bytes, application/json\n" {
		t.Errorf("dry run printed %q", got)
	}
	out.Reset()
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--since", "2030-01-01T00:00:00Z"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "no dead letters") {
		t.Errorf("empty range: %v %q", err, out.String())
	}
	if err := run(ctx, []string{"replay", "--url", url}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("replay without --stream: %v", err)
	}

	// The first bytes of a body over MAX_BODY_BYTES are not sent: they
	// would only be refused as bad input.
	ack, err = js.PublishMsg(ctx, deadLetterMsg("rgwnats.deadletter._", []byte(`{"Records":[{"eventVers`), "application/json",
		map[string]string{"Rgwnats-Reason": "too-large", "Rgwnats-Truncated": "24 of 2000000"}))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	var errOut testutil.Buffer // the log writes to it too, from NATS callbacks
	seq = strconv.FormatUint(ack.Sequence, 10)
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", "http://127.0.0.1:1/", "--seq", seq}, &out, &errOut); err != nil {
		t.Fatalf("replay of a truncated dead letter: %v", err)
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "#"+seq+": not sent: too-large, only 24 of 2000000 bytes were kept") {
		t.Errorf("replay of a truncated dead letter printed %q and %q", out.String(), errOut.String())
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestBusyPorts: a port in use is an error that names the variable to
// change.
func TestBusyPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	log := testLogger()

	cfg := testConfig(t, map[string]string{"LISTEN_ADDRESS": addr, "NATS_URL": "nats://127.0.0.1:1"})
	err = serveConfig(context.Background(), cfg, log, nil)
	if err == nil || !strings.Contains(err.Error(), "set PORT or LISTEN_ADDRESS") || !strings.Contains(err.Error(), addr) {
		t.Errorf("HTTP port in use: %v", err)
	}

	cfg = testConfig(t, map[string]string{"NATS_URL": "", "NATS_EMBEDDED_LISTEN": addr, "NATS_STORE_DIR": t.TempDir()})
	err = serveConfig(context.Background(), cfg, log, nil)
	if err == nil || !strings.Contains(err.Error(), "set NATS_EMBEDDED_LISTEN") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("embedded NATS port in use: %v", err)
	}
}

// TestShutdownDelay: with SHUTDOWN_DELAY, SIGTERM first fails readiness
// while requests are still served (without keep-alive), and only then does
// the server stop.
func TestShutdownDelay(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	s := natsserver.RunServer(&opts)
	defer s.Shutdown()
	const delay = 3 * time.Second
	cfg := testConfig(t, map[string]string{"NATS_URL": s.ClientURL(), "SHUTDOWN_DELAY": delay.String()})
	ep, stop := startServe(t, cfg)
	base := "http://" + ep.HTTP

	if code := get(t, base+"/health/readiness"); code != 200 {
		t.Fatalf("readiness before SIGTERM: %d", code)
	}
	sigterm := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for deadline := time.Now().Add(delay); get(t, base+"/health/readiness") != 503; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("readiness still passes after SIGTERM")
		}
	}
	if code := get(t, base+"/health/liveness"); code != 200 {
		t.Errorf("liveness while draining: %d", code)
	}
	resp, err := http.Post(base+"/", "application/json", bytes.NewReader(fixture(t, "reef-put-capture.json")))
	if err != nil {
		t.Fatalf("request during the delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || !resp.Close {
		t.Errorf("request during the delay: %d, Connection: close %v", resp.StatusCode, resp.Close)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if waited := time.Since(sigterm); waited < delay {
		t.Errorf("stopped %s after SIGTERM, before SHUTDOWN_DELAY (%s)", waited, delay)
	}
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

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestTailRealDeadLetter: a script failure in the running adapter becomes a
// dead letter that tail --stream shows with its reason, script line, event
// id and the original body.
func TestTailRealDeadLetter(t *testing.T) {
	s, _ := jetStreamServer(t)
	script := filepath.Join(t.TempDir(), "fail.lua")
	if err := os.WriteFile(script, []byte("function transform(ev)\n  error('boom')\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, map[string]string{
		"NATS_URL": s.ClientURL(), "NATS_MODE": "jetstream", "NATS_STREAM": "RGW", "LUA_SCRIPT": script,
	})
	ep, _ := startServe(t, cfg)
	resp, err := http.Post("http://"+ep.HTTP+"/", "application/json", bytes.NewReader(fixture(t, "reef-put-capture.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST: %d, want 202 (dead-lettered)", resp.StatusCode)
	}

	t.Setenv("NATS_URL", s.ClientURL())
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tail", "--stream", "RGW", "-n", "1", "-timeout", "10s", "rgwnats.deadletter.>"}, &out, io.Discard); err != nil {
		t.Fatalf("tail: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"--- rgwnats.deadletter.jayanth  #1 ", "(dead letter)\n",
		"  event id: 1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification\n",
		"fail.lua", "boom", "  line:     2\n",
		"  content-type: application/json\n  body:\n  {\n    \"Records\": [",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestTailDefaultSubjects: a plain tail shows what the adapter publishes,
// events and dead letters, and nothing else.
func TestTailDefaultSubjects(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	s := natsserver.RunServer(&opts)
	defer s.Shutdown()
	t.Setenv("NATS_URL", s.ClientURL())
	out, errOut, done := startTail(t, "-n", "2", "-timeout", "10s")
	if !strings.Contains(errOut.String(), `tailing "rgw.>" and "rgwnats.deadletter.>"`) {
		t.Errorf("banner: %s", errOut.String())
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.PublishMsg(cloudEventMsg("other.photos", "not-ours"))
	nc.PublishMsg(cloudEventMsg("rgw.photos.ObjectCreated.Put", "ev-1"))
	nc.PublishMsg(deadLetterMsg("rgwnats.deadletter.photos", []byte("{}"), "application/json", nil))
	nc.Flush()
	waitDone(t, done, out)
	got := out.String()
	if !strings.Contains(got, "id:      ev-1") || !strings.Contains(got, "(dead letter)") || strings.Contains(got, "not-ours") {
		t.Errorf("output:\n%s", got)
	}
}

// TestStartupLine: serve logs one line with the build and every variable in
// force, and no secret.
func TestStartupLine(t *testing.T) {
	s, _ := jetStreamServer(t)
	secrets := map[string]string{
		"AUTH_USERNAME": "rgw", "AUTH_PASSWORD": "pw-secret-1", "AUTH_TOKEN": "token-secret-2",
		"LUA_HMAC_KEY": "hmac-secret-3",
	}
	env := map[string]string{"NATS_URL": "nats://natsuser:nats-secret-4@" + strings.TrimPrefix(s.ClientURL(), "nats://"),
		"NATS_MODE": "jetstream", "NATS_STREAM_CREATE": "true", "K_CE_OVERRIDES": `{"extensions":{"team":"radiology"}}`}
	for k, v := range secrets {
		env[k] = v
	}
	cfg := testConfig(t, env)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan endpoints, 1)
	done := make(chan error, 1)
	go func() { done <- serveConfig(ctx, cfg, slog.New(slog.NewJSONHandler(&logs, nil)), ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("serve not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var start struct {
		Msg     string            `json:"msg"`
		Version string            `json:"version"`
		Config  map[string]string `json:"config"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"rgw-nats starting"`) {
			if start.Msg != "" {
				t.Fatal("two start-up lines")
			}
			if err := json.Unmarshal([]byte(line), &start); err != nil {
				t.Fatal(err)
			}
		}
		for _, secret := range []string{"pw-secret-1", "token-secret-2", "hmac-secret-3", "nats-secret-4"} {
			if strings.Contains(line, secret) {
				t.Errorf("a secret in the log: %s", line)
			}
		}
	}
	if start.Msg == "" || start.Version != rgwbuild.Read().Version {
		t.Fatalf("no start-up line with the version:\n%s", logs.String())
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[function.Config]()) {
		if name := f.Tag.Get("env"); name == "" {
			continue // the embedded service.Settings: its fields follow
		} else if _, ok := start.Config[name]; !ok {
			t.Errorf("start-up line lacks %s", name)
		}
	}
	for k, want := range map[string]string{
		"NATS_MODE": "jetstream", "NATS_SUBJECT": "rgw.{bucket}.{event}", "NATS_STREAM": "RGW", "LUA_TIMEOUT": "100ms",
		"AUTH_USERNAME": "rgw", "AUTH_PASSWORD": "***", "AUTH_TOKEN": "***", "LUA_HMAC_KEY": "***", "NATS_TOKEN": "",
		"K_CE_OVERRIDES": `{"team":"radiology"}`, // the extensions set
	} {
		if got := start.Config[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if u := start.Config["NATS_URL"]; !strings.HasPrefix(u, "nats://***@127.0.0.1:") {
		t.Errorf("NATS_URL = %q", u)
	}
}
