package scripts_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// shellScripts are the scripts these tests cover (scripts/test.sh, the
// project's test command, has its own conventions and no --help).
func shellScripts(t *testing.T) []string {
	t.Helper()
	files := []string{"build.sh", "demo.sh", "rgw-topic.sh", "bench-coldstart.sh", "bench.sh", "ceph-lab.sh", "knative-lab.sh"}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("scripts/%s: %v", f, err)
		}
	}
	return files
}

// TestShellScripts: every script parses, is executable, fails on errors and
// unset variables, and passes shellcheck when it is installed (Debian:
// apt-get install shellcheck).
func TestShellScripts(t *testing.T) {
	shellcheck, _ := exec.LookPath("shellcheck")
	for _, f := range shellScripts(t) {
		t.Run(f, func(t *testing.T) {
			if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v\n%s", err, out)
			}
			info, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm()&0o111 == 0 {
				t.Error("not executable")
			}
			if !regexp.MustCompile(`(?m)^set -euo pipefail$`).Match(mustRead(t, f)) {
				t.Error("no `set -euo pipefail`")
			}
			if shellcheck == "" {
				t.Log("shellcheck not installed: only bash -n checked")
				return
			}
			if out, err := exec.Command(shellcheck, f).CombinedOutput(); err != nil {
				t.Errorf("shellcheck: %v\n%s", err, out)
			}
		})
	}
}

// TestScriptsHelp: --help prints a usage and exits 0 without doing anything;
// a bad option exits 2.
func TestScriptsHelp(t *testing.T) {
	for _, f := range shellScripts(t) {
		t.Run(f, func(t *testing.T) {
			out, err := exec.Command("./"+f, "--help").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Usage: ") {
				t.Fatalf("--help: %v\n%s", err, out)
			}
			cmd := exec.Command("./"+f, "--no-such-option")
			out, err = cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
				t.Fatalf("bad option: exit %d, want 2\n%s", code, out)
			}
		})
	}
}

// topicRun runs rgw-topic.sh with args and a clean aws environment.
func topicRun(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("./rgw-topic.sh", args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HOME="+home,
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_ACCESS_KEY_ID=rgw-nats-test",
		"AWS_SECRET_ACCESS_KEY=rgw-nats-test-secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_DEFAULT_REGION=",
		"RGW_ENDPOINT=", "BUCKET=", "PUSH_ENDPOINT=", "TOPIC=", "PUSH_USER=", "PUSH_PASSWORD=",
	)
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func TestRGWTopicRejectsBadArguments(t *testing.T) {
	base := []string{"-e", "http://rgw:8080", "-b", "xraylab-0001", "-p", "http://rgw-nats.ns.svc.cluster.local/"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"-b", "b", "-p", "http://x/"}, "--endpoint"},
		{"no bucket", []string{"-e", "http://rgw", "-p", "http://x/"}, "--bucket"},
		{"no push endpoint", []string{"-e", "http://rgw", "-b", "b"}, "--push-endpoint"},
		{"user without password", append(base, "-u", "rgw"), "go together"},
		{"credentials in URL already", []string{"-e", "http://rgw", "-b", "b", "-p", "http://a:b@x/"}, "already carries"},
		{"unknown scheme", []string{"-e", "http://rgw", "-b", "b", "-p", "amqp://x/"}, "want http"},
		{"event without s3:", append(base, "--events", "ObjectCreated:*"), "start with s3:"},
		{"bad topic name", append(base, "-t", "a/b"), "topic name"},
		{"not a number", append(base, "--max-retries", "ten"), "whole numbers"},
		{"missing value", append(base, "--prefix"), "needs a value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := topicRun(t, nil, append([]string{"--dry-run"}, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Fatalf("exit %d, stderr %q: want exit 2 and one line mentioning %q", code, stderr, c.want)
			}
		})
	}
}

// TestRGWTopicDryRun checks the attributes and notification configuration
// the script would send, as JSON, for the options that change them.
func TestRGWTopicDryRun(t *testing.T) {
	stdout, stderr, code := topicRun(t, []string{"PUSH_PASSWORD=p@ss:w/rd \"x\""},
		"--dry-run", "-e", "http://rgw:8080", "-b", "xraylab-0001", "-t", "xray",
		"-p", "http://rgw-nats.ns.svc.cluster.local/rgw?x=1", "-u", "rgw",
		"--cloudevents", "--opaque-data", `team "x-ray"`, "--prefix", "demo_", "--suffix", ".jpeg",
		"--events", "s3:ObjectCreated:*", "--max-retries", "10", "--retry-sleep", "2", "--ttl", "3600",
		"--region", "zg1")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "rgw_allow_notification_secrets_in_cleartext") {
		t.Errorf("no warning about credentials over plain http: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two aws commands, got:\n%s", stdout)
	}
	attrs := map[string]string{}
	if err := json.Unmarshal([]byte(argAfter(t, lines[0], "--attributes")), &attrs); err != nil {
		t.Fatalf("--attributes is not a JSON object: %v", err)
	}
	want := map[string]string{
		"push-endpoint":        "http://rgw:p%40ss%3Aw%2Frd%20%22x%22@rgw-nats.ns.svc.cluster.local/rgw?x=1",
		"persistent":           "true",
		"cloudevents":          "true",
		"OpaqueData":           `team "x-ray"`,
		"max_retries":          "10",
		"retry_sleep_duration": "2",
		"time_to_live":         "3600",
	}
	if !mapsEqual(attrs, want) {
		t.Errorf("attributes\n got %v\nwant %v", attrs, want)
	}
	u, err := url.Parse(attrs["push-endpoint"])
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := u.User.Password(); u.User.Username() != "rgw" || p != `p@ss:w/rd "x"` {
		t.Errorf("credentials do not survive URL parsing: %q %q", u.User.Username(), p)
	}
	var cfg notificationJSON
	if err := json.Unmarshal([]byte(argAfter(t, lines[1], "--notification-configuration")), &cfg); err != nil {
		t.Fatalf("--notification-configuration is not JSON: %v", err)
	}
	if len(cfg.TopicConfigurations) != 1 {
		t.Fatalf("%+v", cfg)
	}
	tc := cfg.TopicConfigurations[0]
	if tc.ID != "xray" || tc.TopicArn != "arn:aws:sns:zg1::xray" || len(tc.Events) != 1 || tc.Events[0] != "s3:ObjectCreated:*" {
		t.Errorf("topic configuration %+v", tc)
	}
	if r := tc.Filter.Key.FilterRules; len(r) != 2 || r[0] != (filterRule{"prefix", "demo_"}) || r[1] != (filterRule{"suffix", ".jpeg"}) {
		t.Errorf("filter rules %+v", r)
	}
	if !strings.Contains(lines[1], "--bucket xraylab-0001") {
		t.Errorf("second command is not for the bucket: %s", lines[1])
	}

	// Defaults: persistent, no cloudevents; kafka gets an ack level.
	stdout, _, code = topicRun(t, nil, "--dry-run", "--no-persistent", "-e", "http://rgw", "-b", "b", "-p", "kafka://kafka:9092")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	attrs = map[string]string{}
	if err := json.Unmarshal([]byte(argAfter(t, strings.Split(stdout, "\n")[0], "--attributes")), &attrs); err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(attrs, map[string]string{"push-endpoint": "kafka://kafka:9092", "persistent": "false", "kafka-ack-level": "broker"}) {
		t.Errorf("kafka attributes %v", attrs)
	}
}

type filterRule struct{ Name, Value string }

type notificationJSON struct {
	TopicConfigurations []struct {
		ID       string `json:"Id"`
		TopicArn string
		Events   []string
		Filter   struct {
			Key struct{ FilterRules []filterRule }
		}
	}
}

// argAfter returns the shell word after flag in a line the script printed
// with printf %q, unquoted by bash itself.
func argAfter(t *testing.T, line, flag string) string {
	t.Helper()
	out, err := exec.Command("bash", "-c", `set -- `+line+`
while [ "$#" -gt 0 ]; do if [ "$1" = "$0" ]; then printf '%s' "$2"; exit 0; fi; shift; done; exit 1`, flag).Output()
	if err != nil {
		t.Fatalf("%s not found in %s", flag, line)
	}
	return string(out)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRGWTopicWithAWSCLI runs the script for real: the aws CLI talks to an
// HTTP server standing in for RGW (none runs here) that answers the two
// API calls and records them, so the test sees what RGW would receive: the
// SNS CreateTopic form and the S3 PutBucketNotificationConfiguration XML,
// which must use the TopicArn RGW returned.
func TestRGWTopicWithAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("aws CLI not installed")
	}
	const arn = "arn:aws:sns:default:tenant1:rgw-nats" // RGW adds the tenant
	var (
		mu        sync.Mutex
		form      url.Values
		notifBody []byte
		notifPath string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/":
			form, _ = url.ParseQuery(string(body))
			w.Header().Set("Content-Type", "text/xml")
			io.WriteString(w, `<?xml version="1.0"?><CreateTopicResponse><CreateTopicResult><TopicArn>`+arn+`</TopicArn></CreateTopicResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></CreateTopicResponse>`)
		case r.Method == http.MethodPut && r.URL.Query().Has("notification"):
			notifPath, notifBody = r.URL.Path, body
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()

	stdout, stderr, code := topicRun(t, []string{"PUSH_USER=rgw", "PUSH_PASSWORD=s3cr3t/+"},
		"-e", srv.URL, "-b", "xraylab-0001", "-p", "https://rgw-nats.example/", "--prefix", "demo_")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if form.Get("Action") != "CreateTopic" || form.Get("Name") != "rgw-nats" {
		t.Fatalf("CreateTopic form %v", form)
	}
	got := map[string]string{}
	for i := 1; form.Has("Attributes.entry." + strconv.Itoa(i) + ".key"); i++ {
		got[form.Get("Attributes.entry."+strconv.Itoa(i)+".key")] = form.Get("Attributes.entry." + strconv.Itoa(i) + ".value")
	}
	if !mapsEqual(got, map[string]string{"push-endpoint": "https://rgw:s3cr3t%2F%2B@rgw-nats.example/", "persistent": "true"}) {
		t.Errorf("topic attributes %v", got)
	}
	if notifPath != "/xraylab-0001" {
		t.Fatalf("notification PUT to %q", notifPath)
	}
	var nc struct {
		Topics []struct {
			ID     string   `xml:"Id"`
			Topic  string   `xml:"Topic"`
			Events []string `xml:"Event"`
			Rules  []struct {
				Name, Value string
			} `xml:"Filter>S3Key>FilterRule"`
		} `xml:"TopicConfiguration"`
	}
	if err := xml.Unmarshal(notifBody, &nc); err != nil {
		t.Fatalf("notification body: %v\n%s", err, notifBody)
	}
	if len(nc.Topics) != 1 || nc.Topics[0].Topic != arn || nc.Topics[0].ID != "rgw-nats" ||
		len(nc.Topics[0].Events) != 2 || len(nc.Topics[0].Rules) != 1 || nc.Topics[0].Rules[0].Value != "demo_" {
		t.Errorf("notification configuration %+v\n%s", nc, notifBody)
	}
	if strings.Contains(stdout, "s3cr3t") {
		t.Errorf("the summary prints the password: %s", stdout)
	}
}

// TestDemoRuns runs the whole local demo on free ports: build, adapter with
// its embedded NATS, tail, every sample sent, everything stopped. It checks
// that each payload was accepted and that events arrived on NATS.
func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full demo")
	}
	samples, err := filepath.Glob(repoRoot + "/samples/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob(repoRoot + "/samples/events/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := len(samples) + len(more)
	if n == 0 {
		t.Fatal("no samples")
	}
	cmd := exec.Command("./demo.sh")
	for _, kv := range os.Environ() { // the demo passes rgw-nats variables through
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "LUA_") && !strings.HasPrefix(kv, "CE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"DEMO_HTTP_PORT="+port(t), "DEMO_NATS_PORT="+port(t),
		"NATS_URL=nats://127.0.0.1:1", // must be ignored: the demo uses its embedded server
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), ": 202 Accepted"); got != n {
		t.Errorf("%d of %d payloads accepted\n%s", got, n, out)
	}
	m := regexp.MustCompile(`(?m)^(\d+) events arrived on NATS from (\d+) payloads$`).FindStringSubmatch(string(out))
	if m == nil || m[1] == "0" || m[2] != strconv.Itoa(n) {
		t.Errorf("summary %q: want events from %d payloads\n%s", m, n, out)
	}
	if !strings.Contains(string(out), "rgw-nats stopped cleanly") {
		t.Errorf("rgw-nats did not stop cleanly\n%s", out)
	}
}

func port(t *testing.T) string {
	t.Helper()
	_, p, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
