package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is where go build and scripts/ceph-lab.sh run from.
const repoRoot = ".."

// cephRelease is the lab's Ceph release: E2E_CEPH (pacific, the default and
// what CI runs, or tentacle), passed to scripts/ceph-lab.sh --release.
func cephRelease(t *testing.T) string {
	switch r := os.Getenv("E2E_CEPH"); r {
	case "", "pacific":
		return "pacific"
	case "tentacle":
		return r
	default:
		t.Fatalf("E2E_CEPH=%q: want pacific or tentacle", r)
		return ""
	}
}

// lab is a running scripts/ceph-lab.sh cluster.
type lab struct {
	release  string // pacific or tentacle: where RGW's behaviour differs, the test expects the release's
	dir      string
	env      map[string]string // what lab.env exports
	aws      string            // the awscli binary
	awsHome  string            // HOME for awscli: no ~/.aws of the machine leaks in
	endpoint string
	tls      string
}

// needLab makes sure the lab's packages are there. Only a machine that
// cannot install packages skips, and in CI (CI=true) not even that.
func needLab(t *testing.T) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("e2e: -short")
	}
	out, err := exec.Command(filepath.Join(repoRoot, "scripts/ceph-lab.sh"), "--release", cephRelease(t), "install").CombinedOutput()
	if err == nil {
		return
	}
	reason := fmt.Sprintf("e2e: cannot install the Ceph lab packages (%v): %s", err, lastLine(out))
	if ci {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// startLab starts a lab in a temporary directory and stops it when the
// test ends (before the directory is removed).
func startLab(t *testing.T, debugRGW int) *lab {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(repoRoot, "scripts/ceph-lab.sh")
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("ceph-lab.sh stop: %v\n%s", err, out)
		}
	})
	start := time.Now()
	release := cephRelease(t)
	out, err := exec.Command(script, "--release", release, "--debug-rgw", fmt.Sprint(debugRGW), "start", dir).CombinedOutput()
	if err != nil {
		for _, f := range []string{"log/mon.a.log", "log/osd.0.log", "log/client.rgw.lab.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			t.Logf("%s (tail):\n%s", f, tail(b, 2000))
		}
		t.Fatalf("ceph-lab.sh start: %v\n%s", err, out)
	}
	t.Logf("%s lab up in %s", release, time.Since(start).Round(100*time.Millisecond))
	l := &lab{release: release, dir: dir, env: map[string]string{}, awsHome: t.TempDir()}
	b, err := os.ReadFile(filepath.Join(dir, "lab.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			l.env[k] = strings.Trim(v, "'")
		}
	}
	if got := l.env["CEPH_LAB_RELEASE"]; got != release {
		t.Fatalf("lab.env: CEPH_LAB_RELEASE=%q, want %q", got, release)
	}
	l.endpoint, l.tls = l.env["CEPH_LAB_ENDPOINT"], l.env["CEPH_LAB_TLS_ENDPOINT"]
	// Debian's awscli, not whatever else is on PATH: its behaviour is the
	// one this test knows.
	l.aws = "/usr/bin/aws"
	if _, err := os.Stat(l.aws); err != nil {
		t.Fatalf("awscli: %v", err)
	}
	return l
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (l *lab) awsEnv() []string {
	env := []string{
		"HOME=" + l.awsHome, "PATH=" + os.Getenv("PATH"), "AWS_PAGER=",
		"AWS_ACCESS_KEY_ID=" + l.env["AWS_ACCESS_KEY_ID"],
		"AWS_SECRET_ACCESS_KEY=" + l.env["AWS_SECRET_ACCESS_KEY"],
		"AWS_DEFAULT_REGION=" + l.env["AWS_DEFAULT_REGION"],
		"AWS_EC2_METADATA_DISABLED=true",
	}
	return env
}

// run runs awscli against the plain-HTTP endpoint and returns its stdout.
func (l *lab) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.try(l.endpoint, args...)
	if err != nil {
		t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// runTLS runs awscli against RGW's TLS endpoint (topics with secrets).
func (l *lab) runTLS(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.try(l.tls, append([]string{"--no-verify-ssl"}, args...)...)
	if err != nil {
		t.Fatalf("aws (TLS) %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (l *lab) try(endpoint string, args ...string) (string, error) {
	cmd := exec.Command(l.aws, append([]string{"--endpoint-url", endpoint, "--output", "json"}, args...)...)
	cmd.Env = l.awsEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ceph runs a Ceph tool of the lab's release (the host's for Pacific, the
// one in Tentacle's root) through ceph-lab.sh run; it sees no path outside
// the lab's directory.
func (l *lab) ceph(tool string, args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(repoRoot, "scripts/ceph-lab.sh"),
		append([]string{"run", l.dir, tool, "-c", l.env["CEPH_LAB_CONF"]}, args...)...)
}

// admin runs radosgw-admin on the lab's cluster.
func (l *lab) admin(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.ceph("radosgw-admin", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("radosgw-admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// setDebugRGW changes RGW's log level at run time through its admin socket.
func (l *lab) setDebugRGW(t *testing.T, level int) {
	t.Helper()
	sock := filepath.Join(l.dir, "run/client.rgw.lab.asok")
	out, err := l.ceph("ceph", "--admin-daemon", sock, "config", "set", "debug_rgw", fmt.Sprint(level)).CombinedOutput()
	if err != nil {
		t.Fatalf("set debug_rgw: %v\n%s", err, out)
	}
}

// topic creates (or updates) an SNS topic; secrets need tlsAPI.
func (l *lab) topic(t *testing.T, name string, attrs map[string]string, tlsAPI bool) string {
	t.Helper()
	a, _ := json.Marshal(attrs)
	args := []string{"sns", "create-topic", "--name", name, "--attributes", string(a)}
	var out string
	if tlsAPI {
		out = l.runTLS(t, args...)
	} else {
		out = l.run(t, args...)
	}
	var r struct{ TopicArn string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.TopicArn == "" {
		t.Fatalf("create-topic %s: %q %v", name, out, err)
	}
	return r.TopicArn
}

// topicSpec is an SNS topic a test needs.
type topicSpec struct {
	name   string
	attrs  map[string]string
	tlsAPI bool // its attributes hold a secret
}

// topics creates the topics at once and returns their ARNs by name. RGW
// keeps a user's topics in one object that each create-topic reads and
// writes back whole, so of concurrent calls that all succeeded only the
// last writer's topic may be left (CI lost t-persist, and once t-js and
// t-poison, that way: every put-bucket-notification-configuration naming
// a lost topic then failed). What radosgw-admin does not list is created
// again, one at a time.
func (l *lab) topics(t *testing.T, specs ...topicSpec) map[string]string {
	t.Helper()
	arns := make(map[string]string, len(specs))
	var mu sync.Mutex
	var fs []func()
	for _, s := range specs {
		fs = append(fs, func() {
			arn := l.topic(t, s.name, s.attrs, s.tlsAPI)
			mu.Lock()
			arns[s.name] = arn
			mu.Unlock()
		})
	}
	parallel(fs...)
	for attempt := 0; ; attempt++ {
		// Pacific's RGW answers awscli's ListTopics with an error: ask
		// radosgw-admin, whose listing names each topic's ARN.
		out := l.admin(t, "topic", "list")
		var lost []topicSpec
		for _, s := range specs {
			if !strings.Contains(out, `"`+arns[s.name]+`"`) {
				lost = append(lost, s)
			}
		}
		if len(lost) == 0 {
			return arns
		}
		if attempt == 3 {
			t.Fatalf("topics still missing after creating them again 3 times: %v\n%s", lost, out)
		}
		for _, s := range lost {
			t.Logf("topic %s created concurrently is not in radosgw-admin's list: creating it again", s.name)
			arns[s.name] = l.topic(t, s.name, s.attrs, s.tlsAPI)
		}
	}
}

// parallel runs each f at once and waits for all: awscli spends a second
// of CPU starting, so independent calls overlap.
func parallel(fs ...func()) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
}

// notification is one TopicConfiguration of a bucket.
type notification struct {
	ID, Topic string
	Events    []string
}

func (l *lab) notify(t *testing.T, bucket string, ns ...notification) {
	t.Helper()
	type tc struct {
		Id       string
		TopicArn string
		Events   []string
	}
	cfg := struct{ TopicConfigurations []tc }{[]tc{}}
	for _, n := range ns {
		cfg.TopicConfigurations = append(cfg.TopicConfigurations, tc{n.ID, n.Topic, n.Events})
	}
	b, _ := json.Marshal(cfg)
	l.setup(t, "s3api", "put-bucket-notification-configuration", "--bucket", bucket,
		"--notification-configuration", string(b))
}

// setup runs an idempotent awscli call (a bucket, a topic, a notification
// configuration), trying again a few times: on a loaded machine RGW
// sometimes answers one of a burst of concurrent set-up calls with an
// error awscli cannot parse ("argument of type 'NoneType' is not
// iterable"). Never use it for an S3 operation whose repetition would emit
// a second notification.
func (l *lab) setup(t *testing.T, args ...string) string {
	t.Helper()
	var err error
	// Four attempts were seen to fail in a row on a loaded machine: up to
	// eight, over about half a minute.
	for attempt := range 8 {
		var out string
		if out, err = l.try(l.endpoint, args...); err == nil {
			return out
		}
		t.Logf("aws %s (attempt %d): %v", args[1], attempt+1, err)
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	t.Errorf("aws %s: %v", strings.Join(args, " "), err)
	return ""
}

// postObject uploads body as key with an S3 POST form (browser upload),
// signed with signature version 2, which RGW accepts for POST policies.
func (l *lab) postObject(t *testing.T, bucket, key string, body []byte, meta map[string]string) {
	t.Helper()
	conds := []any{map[string]string{"bucket": bucket}, []string{"starts-with", "$key", ""}}
	for k, v := range meta {
		conds = append(conds, map[string]string{"x-amz-meta-" + k: v})
	}
	policy, _ := json.Marshal(map[string]any{
		"expiration": time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z"),
		"conditions": conds,
	})
	p64 := base64.StdEncoding.EncodeToString(policy)
	mac := hmac.New(sha1.New, []byte(l.env["AWS_SECRET_ACCESS_KEY"]))
	mac.Write([]byte(p64))
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fields := [][2]string{{"key", key}, {"AWSAccessKeyId", l.env["AWS_ACCESS_KEY_ID"]}, {"policy", p64},
		{"signature", base64.StdEncoding.EncodeToString(mac.Sum(nil))}}
	for k, v := range meta {
		fields = append(fields, [2]string{"x-amz-meta-" + k, v})
	}
	for _, f := range fields {
		w.WriteField(f[0], f[1])
	}
	fw, _ := w.CreateFormFile("file", filepath.Base(key))
	fw.Write(body)
	w.Close()
	resp, err := http.Post(l.endpoint+"/"+bucket, w.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("POST form upload: %s %s", resp.Status, b.String())
	}
}

// rgwLog returns RGW's log from offset on.
func (l *lab) rgwLog(t *testing.T, offset int64) ([]byte, int64) {
	t.Helper()
	f, err := os.Open(l.env["CEPH_LAB_RGW_LOG"])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n, _ := b.ReadFrom(f)
	return b.Bytes(), offset + n
}

// adapter is one rgw-nats process, restartable on the same port.
type adapter struct {
	t      *testing.T
	name   string
	bin    string
	port   string
	env    []string
	scheme string

	// socket, when set, is a listening socket this test holds and hands to
	// every run of the binary (systemd's socket activation), so that the
	// port never refuses a connection across a restart.
	socket *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs syncBuffer // stderr of every run, in order
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func newAdapter(t *testing.T, name, bin string, env map[string]string) *adapter {
	a := &adapter{t: t, name: name, bin: bin, port: freePort(t), scheme: "http"}
	a.env = []string{"PATH=" + os.Getenv("PATH"), "LISTEN_ADDRESS=127.0.0.1:" + a.port, "LOG_FORMAT=json"}
	for k, v := range env {
		a.env = append(a.env, k+"="+v)
		if k == "TLS_CERT_FILE" {
			a.scheme = "https"
		}
	}
	t.Cleanup(func() { a.stop() })
	return a
}

// holdSocket makes the test own the adapter's listening socket from now on
// and hand it over at every start, as a systemd .socket unit does.
func (a *adapter) holdSocket() {
	a.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		a.t.Fatal(err)
	}
	ln.Close() // f is a duplicate: the socket stays open and listening
	a.t.Cleanup(func() { f.Close() })
	a.socket, a.port = f, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	for i, kv := range a.env {
		if strings.HasPrefix(kv, "LISTEN_ADDRESS=") {
			a.env[i] = "LISTEN_ADDRESS=127.0.0.1:" + a.port // what it would bind without the socket
		}
	}
}

func (a *adapter) url(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return a.scheme + "://" + userinfo + "127.0.0.1:" + a.port + "/" + a.name
}

// start runs the binary and waits for its readiness probe.
func (a *adapter) start() {
	a.t.Helper()
	cmd := exec.Command(a.bin)
	cmd.Env = a.env
	if a.socket != nil {
		// LISTEN_PID must be rgw-nats' own pid: the shell execs it.
		cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, a.bin)
		cmd.Env = append(append([]string(nil), a.env...), "LISTEN_FDS=1")
		cmd.ExtraFiles = []*os.File{a.socket}
	}
	cmd.Stderr = &a.logs
	cmd.Stdout = &a.logs
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.mu.Lock()
	a.cmd = cmd
	a.mu.Unlock()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get(a.scheme + "://127.0.0.1:" + a.port + "/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("%s not ready in 20s: %v\n%s", a.name, err, a.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill is SIGKILL: no drain, no answer to requests under way.
func (a *adapter) kill() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.cmd.Process.Kill()
		a.cmd.Wait()
		a.cmd = nil
	}
}

func (a *adapter) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
	a.cmd = nil
}

// logLines returns the adapter's JSON log lines as maps.
func (a *adapter) logLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(a.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitUntil polls cond every 100 ms until it holds or d has passed.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
