package knativee2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ceph is the Pacific lab of scripts/ceph-lab.sh: the real RGW whose
// persistent topics push to rgw-nats behind Knative. One lab serves every
// test of the run; TestMain stops it.
type ceph struct {
	dir      string
	env      map[string]string
	awsHome  string
	endpoint string // plain HTTP S3 API
	tls      string // HTTPS S3 API: topics with credentials in the push-endpoint
}

var (
	cephOnce sync.Once
	theCeph  *ceph
	cephErr  error
	cephDir  string // to stop at the end
)

// First delivery of a new persistent topic: RGW polls for the owner of a
// new queue every 30 s (shared/reference/ceph-single-node.md); two polls.
const firstPersistent = 75 * time.Second

func needCeph(t *testing.T) *ceph {
	t.Helper()
	cephOnce.Do(func() { theCeph, cephErr = startCeph() })
	if cephErr != nil {
		t.Fatalf("Pacific Ceph lab: %v", cephErr)
	}
	return theCeph
}

func cephScript() string { return mustAbs(filepath.Join(repoRoot, "scripts/ceph-lab.sh")) }

func startCeph() (*ceph, error) {
	if out, err := exec.Command(cephScript(), "--release", "pacific", "install").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ceph-lab.sh install: %v: %s", err, tailStr(string(out), 1000))
	}
	// A start that fails is tried once more in a fresh directory: on this
	// shared machine one was seen to fail without a word and the next to
	// come up.
	var dir string
	for attempt := 1; ; attempt++ {
		d, err := os.MkdirTemp("", "ke2e-ceph-")
		if err != nil {
			return nil, err
		}
		cephDir = d
		out, err := exec.Command(cephScript(), "--release", "pacific", "start", d).CombinedOutput()
		if err == nil {
			dir = d
			break
		}
		var logs strings.Builder
		for _, f := range []string{"log/mon.a.log", "log/osd.0.log", "log/client.rgw.lab.log"} {
			b, _ := os.ReadFile(filepath.Join(d, f))
			fmt.Fprintf(&logs, "%s (tail): %s\n", f, tailStr(string(b), 600))
		}
		exec.Command(cephScript(), "stop", d).Run()
		os.RemoveAll(d)
		cephDir = ""
		if attempt == 2 {
			return nil, fmt.Errorf("ceph-lab.sh start: %v: %s\n%s", err, tailStr(string(out), 2000), logs.String())
		}
		fmt.Fprintf(os.Stderr, "ceph-lab.sh start (attempt %d): %v: %s\n%s", attempt, err, tailStr(string(out), 2000), logs.String())
	}
	c := &ceph{dir: dir, env: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "lab.env"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			c.env[k] = strings.Trim(v, "'")
		}
	}
	c.endpoint, c.tls = c.env["CEPH_LAB_ENDPOINT"], c.env["CEPH_LAB_TLS_ENDPOINT"]
	if c.awsHome, err = os.MkdirTemp("", "ke2e-aws-"); err != nil {
		return nil, err
	}
	return c, nil
}

func stopCeph() {
	if cephDir == "" {
		return
	}
	if out, err := exec.Command(cephScript(), "stop", cephDir).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "ceph-lab.sh stop: %v\n%s", err, out)
	}
	os.RemoveAll(cephDir)
	if theCeph != nil {
		os.RemoveAll(theCeph.awsHome)
	}
}

func (c *ceph) try(endpoint string, args ...string) (string, error) {
	// Debian's awscli: its behaviour is the one these tests know.
	cmd := exec.Command("/usr/bin/aws", append([]string{"--endpoint-url", endpoint, "--output", "json"}, args...)...)
	cmd.Env = []string{
		"HOME=" + c.awsHome, "PATH=" + os.Getenv("PATH"), "AWS_PAGER=",
		"AWS_ACCESS_KEY_ID=" + c.env["AWS_ACCESS_KEY_ID"],
		"AWS_SECRET_ACCESS_KEY=" + c.env["AWS_SECRET_ACCESS_KEY"],
		"AWS_DEFAULT_REGION=" + c.env["AWS_DEFAULT_REGION"],
		"AWS_EC2_METADATA_DISABLED=true",
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("aws %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// run is one S3 operation (never repeated: a repetition would notify again).
func (c *ceph) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.try(c.endpoint, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setup runs an idempotent call, trying again: a loaded RGW sometimes
// answers one of a burst of set-up calls with an error awscli cannot parse.
func (c *ceph) setup(t *testing.T, tlsAPI bool, args ...string) string {
	t.Helper()
	endpoint := c.endpoint
	if tlsAPI {
		endpoint, args = c.tls, append([]string{"--no-verify-ssl"}, args...)
	}
	var err error
	for attempt := range 6 {
		var out string
		if out, err = c.try(endpoint, args...); err == nil {
			return out
		}
		t.Logf("attempt %d: %v", attempt+1, err)
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	t.Fatal(err)
	return ""
}

// persistentTopic creates a persistent topic pushing to endpoint and
// subscribes bucket's ObjectCreated events to it. A push-endpoint with
// credentials must be created through RGW's TLS port.
func (c *ceph) persistentTopic(t *testing.T, name, endpoint, bucket string) {
	t.Helper()
	attrs, _ := json.Marshal(map[string]string{"push-endpoint": endpoint, "persistent": "true"})
	out := c.setup(t, strings.Contains(endpoint, "@"), "sns", "create-topic", "--name", name, "--attributes", string(attrs))
	var r struct{ TopicArn string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.TopicArn == "" {
		t.Fatalf("create-topic %s: %q %v", name, out, err)
	}
	c.setup(t, false, "s3api", "create-bucket", "--bucket", bucket)
	cfg, _ := json.Marshal(map[string]any{"TopicConfigurations": []any{map[string]any{
		"Id": name, "TopicArn": r.TopicArn, "Events": []string{"s3:ObjectCreated:*"}}}})
	c.setup(t, false, "s3api", "put-bucket-notification-configuration", "--bucket", bucket,
		"--notification-configuration", string(cfg))
}

// put uploads one object and returns its key.
func (c *ceph) put(t *testing.T, bucket, key string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "body")
	os.WriteFile(f, []byte("uploaded by e2e/knative: "+key+"\n"), 0o644)
	c.run(t, "s3api", "put-object", "--bucket", bucket, "--key", key, "--body", f)
}
