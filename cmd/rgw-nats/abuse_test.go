package main

// Tests of issue 17: no single input takes the process down or loses an
// event silently. Each runs the built binary against a real nats-server.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// binProc is the built binary, serving.
type binProc struct {
	base string
	logs *syncBuffer
	cmd  *exec.Cmd
}

// startBinary runs the binary with env (over the test's environment) on a
// free loopback port and waits for its readiness.
func startBinary(t *testing.T, env map[string]string) *binProc {
	t.Helper()
	bin := cliBinary(t)
	port := freeTCPPort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "LISTEN_ADDRESS=127.0.0.1:"+port, "LOG_LEVEL=info", "METRICS_ADDRESS=off")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &binProc{base: "http://127.0.0.1:" + port, logs: &syncBuffer{}, cmd: cmd}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("process output:\n%s", lastBytes(p.logs.String(), 6000))
		}
	})
	p.waitHealth(t, "/health/readiness", 200, 15*time.Second)
	return p
}

// waitHealth waits until path answers code.
func (p *binProc) waitHealth(t *testing.T, path string, code int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if p.health(path) == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %d within %v (now %d)", path, code, within, p.health(path))
		}
	}
}

func (p *binProc) health(path string) int {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// post sends body with content type ct (and extra headers) and returns the
// status and the answer's first line.
func (p *binProc) post(t *testing.T, ct string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.base+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// rgwBody is a raw RGW POST of the sample record with eventId id, changed by
// edit (nil: unchanged).
func rgwBody(t testing.TB, id string, edit func(rec map[string]any)) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(testutil.SampleRecord(t), &rec); err != nil {
		t.Fatal(err)
	}
	rec["eventId"] = id
	if edit != nil {
		edit(rec)
	}
	b, err := json.Marshal(map[string]any{"Records": []any{rec}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setBucket(name string) func(map[string]any) {
	return func(rec map[string]any) {
		rec["s3"].(map[string]any)["bucket"].(map[string]any)["name"] = name
	}
}

// TestPoisonSubjectKeepsConnection: requests whose subject NATS cannot read
// (longer than its 4 KiB protocol line: a long bucket name, a structured
// event's bucket extension, a subject a script sets) are dead-lettered,
// answered 2xx, and leave the shared connection up: the next good event is
// published. Before, the server dropped the connection, nats.go closed it
// for good, and every later request got 503 while liveness said 200.
func TestPoisonSubjectKeepsConnection(t *testing.T) {
	s := testutil.NATS(t)
	script := t.TempDir() + "/subject.lua"
	if err := os.WriteFile(script, []byte(`function transform(ev)
  if ev.ext.bucket == "lua-long" then ev.nats.subject = string.rep("a", 5000) end
  return ev
end`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, map[string]string{"NATS_URL": s.ClientURL(), "LUA_SCRIPT": script})
	events := testutil.Subscribe(t, s.ClientURL(), "rgw.>")
	dead := testutil.Subscribe(t, s.ClientURL(), "rgwnats.deadletter.>")
	all := testutil.Subscribe(t, s.ClientURL(), ">")
	defer func() {
		for len(all) > 0 {
			m := <-all
			t.Logf("seen %s", lastBytes(m.Subject, 80))
		}
	}()

	long := strings.Repeat("b", 5000)
	structured, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "structured-long-bucket", "source": "ceph:s3..x", "type": "com.amazonaws.ObjectCreated:Put",
		"bucket": long, "datacontenttype": "application/json", "data": map[string]any{"not": "a record"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name, ct string
		body     []byte
	}{
		{"raw RGW, 5000-byte bucket", "application/json", rgwBody(t, "long-bucket", setBucket(long))},
		{"structured CloudEvent, 5000-byte bucket extension", "application/cloudevents+json", structured},
		{"raw RGW, eventName of 5000 bytes", "application/json", rgwBody(t, "long-event", func(r map[string]any) { r["eventName"] = "s3:" + long })},
		{"script sets a 5000-byte subject", "application/json", rgwBody(t, "lua-long", setBucket("lua-long"))},
	} {
		code, answer := p.post(t, c.ct, c.body, nil)
		if code != http.StatusAccepted {
			t.Errorf("%s: %d %s, want 202 (dead letter)", c.name, code, answer)
			continue
		}
		m := testutil.Receive(t, dead, 1)[0]
		if len(m.Subject) > 4096 || m.Header.Get("Rgwnats-Reason") == "" {
			t.Errorf("%s: dead letter on %q, reason %q", c.name, lastBytes(m.Subject, 100), m.Header.Get("Rgwnats-Reason"))
		}
		// The connection is still the one everyone shares: a good event
		// goes through right after.
		good := rgwBody(t, "good-"+strings.Repeat("x", i+1), nil)
		if code, answer := p.post(t, "application/json", good, nil); code != http.StatusAccepted {
			t.Fatalf("after %s: good event answered %d %s", c.name, code, answer)
		}
		testutil.Receive(t, events, 1)
	}
	testutil.None(t, events)
	if code := p.health("/health/readiness"); code != 200 {
		t.Errorf("readiness %d after the poison requests", code)
	}
	if strings.Contains(p.logs.String(), "nats connection closed") {
		t.Error("the NATS connection was closed")
	}
}

// TestNoPasswordInOutput: a NATS_URL with a password, malformed or
// unreachable, never shows the password in what serve, tail and replay print.
func TestNoPasswordInOutput(t *testing.T) {
	bin := cliBinary(t)
	dead := "127.0.0.1:" + freeTCPPort(t)
	for _, c := range []struct {
		url  string
		args []string
	}{
		{"nats://admin:s3cr3t-pw@127.0.0.1:notaport", nil},
		{"nats://admin:s3cr3t-pw@" + dead, []string{"tail"}},
		{"nats://admin:s3cr3t-pw@127.0.0.1:notaport", []string{"tail"}},
		{"nats://admin:s3cr3t-pw@" + dead, []string{"replay", "--stream", "RGW"}},
		{"nats://admin:s3cr3t-pw@127.0.0.1:notaport", []string{"replay", "--stream", "RGW"}},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = append(os.Environ(), "NATS_URL="+c.url, "LISTEN_ADDRESS=127.0.0.1:"+freeTCPPort(t))
		done := make(chan struct{})
		var out []byte
		go func() {
			out, _ = cmd.CombinedOutput()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if strings.Contains(string(out), "s3cr3t") {
			t.Errorf("%v with NATS_URL %s prints the password:\n%s", c.args, c.url, out)
		}
	}
}

// TestDeniedPublishDeadLettered: in core mode, an event the NATS user may
// not publish is dead-lettered (reason denied) and answered 202, instead of
// being answered 202 and counted published while the server dropped it; a
// resend is then a duplicate of a dead letter, not of a lost event.
func TestDeniedPublishDeadLettered(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.Users = []*server.User{{
		Username: "rgw", Password: "pw",
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"rgw.ok.>", "rgwnats.deadletter.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		},
	}}
	s := natsserver.RunServer(&opts)
	defer s.Shutdown()
	url := "nats://rgw:pw@" + s.Addr().String()
	p := startBinary(t, map[string]string{"NATS_URL": url})
	events := testutil.Subscribe(t, url, "rgw.>")
	dead := testutil.Subscribe(t, url, "rgwnats.deadletter.>")

	if code, answer := p.post(t, "application/json", rgwBody(t, "denied-1", setBucket("denied")), nil); code != http.StatusAccepted {
		t.Fatalf("denied event: %d %s, want 202 with a dead letter", code, answer)
	}
	m := testutil.Receive(t, dead, 1)[0]
	if r := m.Header.Get("Rgwnats-Reason"); r != "denied" {
		t.Errorf("dead letter reason %q, want denied (%s)", r, m.Header.Get("Rgwnats-Error"))
	}
	if code, answer := p.post(t, "application/json", rgwBody(t, "allowed-1", setBucket("ok")), nil); code != http.StatusAccepted {
		t.Fatalf("allowed event: %d %s", code, answer)
	}
	if got := testutil.Receive(t, events, 1)[0]; got.Subject != "rgw.ok.ObjectCreated.Put" {
		t.Errorf("published on %s", got.Subject)
	}
	testutil.None(t, events)
}

// TestBodyAtAndOverLimitDeadLettered: with the defaults, where
// MAX_BODY_BYTES equals nats-server's max_payload (1 MiB), a raw RGW body of
// exactly 1 MiB (whose event cannot fit with its headers) and one over the
// limit each end in a dead letter cut to fit and 202. Before: 503 forever
// (the dead letter did not fit either).
func TestBodyAtAndOverLimitDeadLettered(t *testing.T) {
	s := testutil.NATS(t)
	p := startBinary(t, map[string]string{"NATS_URL": s.ClientURL()})
	dead := testutil.Subscribe(t, s.ClientURL(), "rgwnats.deadletter.>")
	for _, size := range []int{1 << 20, 1<<20 + 1, 1<<20 + 4096} {
		body := rgwBody(t, fmt.Sprintf("big-%d", size), func(r map[string]any) { r["opaqueData"] = "" })
		body = rgwBody(t, fmt.Sprintf("big-%d", size), func(r map[string]any) { r["opaqueData"] = strings.Repeat("p", size-len(body)) })
		if len(body) != size {
			t.Fatalf("body of %d bytes, want %d", len(body), size)
		}
		code, answer := p.post(t, "application/json", body, nil)
		if code != http.StatusAccepted {
			t.Errorf("%d bytes: %d %s, want 202 with a dead letter", size, code, answer)
			continue
		}
		m := testutil.Receive(t, dead, 1)[0]
		t.Logf("%d bytes: dead letter %s, %d payload bytes, truncated %q", size, m.Header.Get("Rgwnats-Reason"), len(m.Data), m.Header.Get("Rgwnats-Truncated"))
	}
}

// slowSender opens a connection, sends a POST's headers (declaring 1 MiB,
// or chunked) and then one body byte a second until the server answers or
// closes; it reports the status line (or "closed") and when it came.
func slowSender(base string, chunked bool, stop <-chan struct{}) (string, time.Duration) {
	start := time.Now()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return "dial: " + err.Error(), 0
	}
	defer conn.Close()
	head := "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += "Content-Length: 1048576\r\n\r\n"
	}
	if _, err := conn.Write([]byte(head)); err != nil {
		return "write: " + err.Error(), time.Since(start)
	}
	answer := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			answer <- "closed"
			return
		}
		answer <- strings.TrimSpace(line)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case a := <-answer:
			return a, time.Since(start)
		case <-stop:
			return "still open", time.Since(start)
		case <-tick.C:
			b := []byte("{")
			if chunked {
				b = []byte("1\r\n{\r\n")
			}
			conn.Write(b)
		}
	}
}

// TestSlowSendersDoNotStarve: 32 uploads that declare 1 MiB (16) or are
// chunked (16) and send a byte a second do not keep a steady good load
// from being answered: admission counts the bytes read, not the declared
// length, and a body that does not keep up the minimum rate is answered 408
// and loses its reservation within seconds. Before, 16 such uploads held all
// of MAX_INFLIGHT_BYTES until the 60 s read timeout and every good request
// got 503.
func TestSlowSendersDoNotStarve(t *testing.T) {
	s := testutil.NATS(t)
	p := startBinary(t, map[string]string{"NATS_URL": s.ClientURL(), "LOG_LEVEL": "error"})
	events := testutil.Subscribe(t, s.ClientURL(), "rgw.>")
	stop := make(chan struct{})
	type slow struct {
		answer string
		after  time.Duration
	}
	slows := make(chan slow, 32)
	for i := range 32 {
		go func() {
			a, d := slowSender(p.base, i%2 == 1, stop)
			slows <- slow{a, d}
		}()
	}
	time.Sleep(500 * time.Millisecond) // every slow upload has declared itself
	const good = 100
	codes := map[int]int{}
	var worst time.Duration
	tick := time.NewTicker(100 * time.Millisecond)
	for i := range good {
		<-tick.C
		t0 := time.Now()
		code, _ := p.post(t, "application/json", rgwBody(t, fmt.Sprintf("steady-%d", i), nil), nil)
		worst = max(worst, time.Since(t0))
		codes[code]++
	}
	tick.Stop()
	close(stop)
	answers := map[string]int{}
	var slowest time.Duration
	for range 32 {
		r := <-slows
		answers[r.answer]++
		slowest = max(slowest, r.after)
	}
	t.Logf("good requests (one every 100 ms for 10 s, beside 32 slow uploads): %v, slowest answer %v", codes, worst.Round(time.Millisecond))
	t.Logf("slow uploads: %v, the last ended after %v", answers, slowest.Round(time.Millisecond))
	if codes[http.StatusAccepted] != good {
		t.Errorf("%d of %d good requests answered 202", codes[http.StatusAccepted], good)
	}
	testutil.Receive(t, events, good)
	if answers["still open"] > 0 {
		t.Errorf("%d slow uploads still held their connection after 10 s", answers["still open"])
	}
}

// TestContentEncodingRefused: a compressed body is answered 415 and nothing
// is published or dead-lettered (before: dead-lettered as undecodable, 202);
// identity is the body as it is.
func TestContentEncodingRefused(t *testing.T) {
	s := testutil.NATS(t)
	p := startBinary(t, map[string]string{"NATS_URL": s.ClientURL()})
	all := testutil.Subscribe(t, s.ClientURL(), ">")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(rgwBody(t, "gzipped", nil))
	zw.Close()
	for _, enc := range []string{"gzip", "br", "identity, gzip"} {
		if code, answer := p.post(t, "application/json", gz.Bytes(), map[string]string{"Content-Encoding": enc}); code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Encoding %s: %d %s, want 415", enc, code, answer)
		}
	}
	testutil.None(t, all)
	if code, answer := p.post(t, "application/json", rgwBody(t, "identity", nil), map[string]string{"Content-Encoding": "identity"}); code != http.StatusAccepted {
		t.Errorf("Content-Encoding identity: %d %s", code, answer)
	}
	testutil.Receive(t, all, 1)
}

// TestAmbiguousFramingClosesConnection: a request with both Content-Length
// and Transfer-Encoding is answered and its connection closed, even with
// kept-alive connections; one with Content-Length alone keeps it.
func TestAmbiguousFramingClosesConnection(t *testing.T) {
	s := testutil.NATS(t)
	p := startBinary(t, map[string]string{"NATS_URL": s.ClientURL(), "RGW_CLOSE_CONNECTIONS": "false"})
	for _, c := range []struct {
		name      string
		ambiguous bool
	}{{"Content-Length alone", false}, {"Content-Length and Transfer-Encoding", true}} {
		body := rgwBody(t, "framing-"+strconv.FormatBool(c.ambiguous), nil)
		head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", len(body))
		payload := string(body)
		if c.ambiguous {
			head += "Transfer-Encoding: chunked\r\n"
			payload = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(head + "\r\n" + payload)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// Whether the server closed the connection: a read ends at once.
		conn.SetReadDeadline(time.Now().Add(time.Second))
		_, rerr := br.ReadByte()
		closed := rerr == io.EOF
		t.Logf("%s: %d, Connection: close %v, closed %v", c.name, resp.StatusCode, resp.Close, closed)
		if resp.StatusCode != http.StatusAccepted || closed != c.ambiguous || resp.Close != c.ambiguous {
			t.Errorf("%s: %d, Connection: close %v, connection closed %v; want 202 and closed %v", c.name, resp.StatusCode, resp.Close, closed, c.ambiguous)
		}
	}
}
