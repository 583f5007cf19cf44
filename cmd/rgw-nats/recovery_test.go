package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// deadLetters counts the dead letters a stream holds.
func deadLetters(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	st, err := js.Stream(context.Background(), "RGW")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("rgwnats.deadletter.>"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// TestReplayAfterFix is TestReplay's twin where the product makes the dead
// letter itself, end to end in one process: a script fails for one key, the
// event is dead-lettered; RGW's resend of it makes no second dead letter;
// the script is fixed (hot reload); `replay` publishes it once; `replay`
// again publishes nothing. Core mode, so that nothing but the adapter's own
// duplicate window keeps it from being published twice (issue 18: the
// window remembered dead-lettered ids as done, and replay published
// nothing for DEDUP_WINDOW).
func TestReplayAfterFix(t *testing.T) {
	s, js := jetStreamServer(t)
	script := filepath.Join(t.TempDir(), "transform.lua")
	broken := "function transform(ev)\n  if ev.subject == 'docs/report.txt' then error('cannot handle ' .. ev.subject) end\n  return ev\nend\n"
	if err := os.WriteFile(script, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, map[string]string{
		"NATS_URL": s.ClientURL(), "NATS_MODE": "core", "NATS_STREAM": "RGW", "LUA_SCRIPT": script,
		"DEDUP_WINDOW": "10m",
	})
	ep, _ := startServe(t, cfg)
	t.Setenv("NATS_URL", s.ClientURL())
	ctx := context.Background()
	url := "http://" + ep.HTTP + "/"
	bad := "../../samples/events/pacific-16.2.15/put-with-meta.json" // docs/report.txt
	good := "../../samples/events/reef-put-capture.json"
	const badID = "1795554846.485564.8dd5067d1c62a18c414da9ef1f1dbde6.main-created"
	const goodID = "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification"

	var out bytes.Buffer
	if err := run(ctx, []string{"send", "--url", url, bad, good}, &out, io.Discard); err != nil {
		t.Fatalf("send: %v\n%s", err, out.String())
	}
	t.Logf("send:\n%s", out.String())
	wantLines(t, out.String(),
		bad+": 202 Accepted [published=0, duplicate=0, dropped=0, deadlettered=1, failed=0]",
		good+": 202 Accepted [published=1, duplicate=0, dropped=0, deadlettered=0, failed=0]")
	testutil.WaitFor(t, func() bool { return deadLetters(t, js) == 1 && len(storedEvents(t, js)) == 1 })
	if got := storedEvents(t, js); !mapsEqual(got, map[string]int{goodID: 1}) {
		t.Fatalf("after the first send the stream holds %v", got)
	}

	// RGW resends what was dead-lettered (it resends entries queued behind a
	// failing one): a duplicate, no second dead letter.
	out.Reset()
	if err := run(ctx, []string{"send", "--url", url, bad}, &out, io.Discard); err != nil {
		t.Fatalf("send again: %v\n%s", err, out.String())
	}
	t.Logf("send again:\n%s", out.String())
	wantLines(t, out.String(), bad+": 202 Accepted [published=0, duplicate=1, dropped=0, deadlettered=0, failed=0]")

	// Fix the script; wait for the reload.
	fixed := "function transform(ev)\n  return ev\nend\n"
	if err := os.WriteFile(script, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		resp, err := http.Get(url + "metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `rgwnats_script_reloads_total{result="ok"} 1`)
	})

	out.Reset()
	var errOut testutil.Buffer
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url}, &out, &errOut); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	t.Logf("replay:\n%s", out.String())
	if !strings.Contains(errOut.String(), "replayed 1 dead letter(s): published=1, duplicate=0, dropped=0, deadlettered=0, failed=0\n") {
		t.Errorf("replay's summary:\n%s", errOut.String())
	}
	wantLines(t, out.String(), "#1 event "+badID+" (script): 202 Accepted [published=1, duplicate=0, dropped=0, deadlettered=0, failed=0]")
	want := map[string]int{goodID: 1, badID: 1}
	testutil.WaitFor(t, func() bool { return len(storedEvents(t, js)) == 2 })
	if got := storedEvents(t, js); !mapsEqual(got, want) {
		t.Fatalf("after the replay the stream holds %v, want %v", got, want)
	}

	out.Reset()
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url}, &out, io.Discard); err != nil {
		t.Fatalf("replay again: %v\n%s", err, out.String())
	}
	t.Logf("replay again:\n%s", out.String())
	wantLines(t, out.String(), "#1 event "+badID+" (script): 202 Accepted [published=0, duplicate=1, dropped=0, deadlettered=0, failed=0]")
	// Whatever a late publish would need to arrive: the server has it by
	// the time replay got its answer (core: flushed), and one more send of
	// a good event proves the connection's order.
	if err := run(ctx, []string{"send", "--url", url, good}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := storedEvents(t, js); !mapsEqual(got, want) {
		t.Fatalf("after replaying again the stream holds %v, want %v", got, want)
	}
	if n := deadLetters(t, js); n != 1 {
		t.Errorf("the stream holds %d dead letters, want 1", n)
	}

	// tail and replay leave no consumer behind (issue 18: 8 unnamed ones
	// were seen in `nats stream info`). The test's own look-ups go first.
	st, err := js.Stream(ctx, "RGW")
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.ConsumerNames(ctx).Name() {
		st.DeleteConsumer(ctx, name)
	}
	if err := run(ctx, []string{"tail", "--stream", "RGW", "-n", "1", "-timeout", "5s"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"replay", "--stream", "RGW", "--url", url}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Consumers != 0 {
		t.Errorf("%v consumers left on the stream by tail and replay (%v)", info.State.Consumers, err)
	}
}

// wantLines fails unless out is exactly these lines.
func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	if want := strings.Join(lines, "\n") + "\n"; out != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out, want)
	}
}

// TestServeRefusesBadSettings: the built binary refuses every setting that
// cannot work before it starts anything, in one log line in the configured
// format, exit 1 (issue 18: LOG_LEVEL=verbose and LOG_FORMAT=logfmt were
// accepted, LUA_SCRIPT=/nonexistent was reported only after the embedded
// NATS server started, and the fatal line was plain text under JSON logs).
func TestServeRefusesBadSettings(t *testing.T) {
	bin := cliBinary(t)
	for _, c := range []struct {
		env  []string
		json bool
		want string
	}{
		{[]string{"LOG_LEVEL=verbose"}, true, `LOG_LEVEL=\"verbose\": want debug, info, warn or error`},
		{[]string{"LOG_FORMAT=logfmt"}, true, `LOG_FORMAT=\"logfmt\": want json or text`},
		{[]string{"LOG_FORMAT=text", "LOG_LEVEL=loud"}, false, `LOG_LEVEL=\"loud\"`},
		{[]string{"LUA_SCRIPT=/nonexistent"}, true, `LUA_SCRIPT=\"/nonexistent\"`},
		{[]string{"LOG_FORMAT=text", "LUA_SCRIPT=/nonexistent"}, false, `LUA_SCRIPT=\"/nonexistent\"`},
		{[]string{"TLS_CERT_FILE=/nonexistent.pem", "TLS_KEY_FILE=/nonexistent.key"}, true, `TLS_CERT_FILE=\"/nonexistent.pem\"`},
		{[]string{"NATS_CREDS=/nonexistent.creds"}, true, `NATS_CREDS: open /nonexistent.creds`},
	} {
		cmd := exec.Command(bin)
		// No NATS_URL: the embedded server would start (in this build,
		// fail to) were the settings not checked first.
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LISTEN_ADDRESS=127.0.0.1:0", "NATS_EMBEDDED_LISTEN=127.0.0.1:0"}, c.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		line := strings.TrimSpace(stderr.String())
		if exitCode(err) != 1 || err == nil || strings.Count(line, "\n") != 0 || strings.Contains(line, "embedded") {
			t.Errorf("%v: exit %v, want 1 and one line before anything starts:\n%s", c.env, err, line)
			continue
		}
		if c.json {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["level"] != "ERROR" {
				t.Errorf("%v: not a JSON error line: %s", c.env, line)
			}
			if !strings.Contains(line, `"error":"`) || !strings.Contains(line, c.want) {
				t.Errorf("%v: %s, want %s", c.env, line, c.want)
			}
		} else if !strings.HasPrefix(line, "time=") || !strings.Contains(line, "level=ERROR") || !strings.Contains(line, strings.ReplaceAll(c.want, `\"`, `\"`)) {
			t.Errorf("%v: not a text error line with %s: %s", c.env, c.want, line)
		}
	}
}

// TestSIGTERMWithoutNATS: SIGTERM stops a binary that never reached NATS
// with exit 0: nothing was accepted, so nothing is lost (issue 18: exit 1,
// "close without drain").
func TestSIGTERMWithoutNATS(t *testing.T) {
	bin := cliBinary(t)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LISTEN_ADDRESS=127.0.0.1:0", "NATS_URL=nats://127.0.0.1:1", "LOG_FORMAT=text"}
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "rgw-nats listening") })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "rgw-nats stopped") || strings.Contains(stderr.String(), "level=ERROR") {
		t.Errorf("log:\n%s", stderr.String())
	}
}
