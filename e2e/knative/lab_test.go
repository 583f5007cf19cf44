package knativee2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is this work tree: the kustomizations applied are its knative/
// tree, and the image is built from it.
const repoRoot = "../.."

// klab is the running lab KNATIVE_LAB names.
type klab struct {
	dir     string
	env     map[string]string // what lab.env exports
	kubectl string
	hostIP  string // the host's address on the lab bridge (KNATIVE_LAB_NODE_IP): pods reach the test's listeners there
	ingress *url.URL
	image   string // the rgw-nats image built from this work tree
}

var (
	labOnce sync.Once
	theLab  *klab
	labErr  error
)

// needLab skips without KNATIVE_LAB and fails when the lab it names is not
// usable: whoever sets it wants the tests to run.
func needLab(t *testing.T) *klab {
	t.Helper()
	dir := os.Getenv("KNATIVE_LAB")
	if dir == "" {
		t.Skip("e2e/knative: KNATIVE_LAB=DIR is not set (a lab started by scripts/knative-lab.sh)")
	}
	labOnce.Do(func() { theLab, labErr = openLab(dir) })
	if labErr != nil {
		t.Fatalf("knative lab %s: %v", dir, labErr)
	}
	return theLab
}

func labScript() string {
	if s := os.Getenv("KNATIVE_LAB_SCRIPT"); s != "" {
		return s
	}
	abs, _ := filepath.Abs(filepath.Join(repoRoot, "scripts/knative-lab.sh"))
	return abs
}

func openLab(dir string) (*klab, error) {
	l := &klab{dir: dir, env: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "lab.env"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if ok {
			l.env[k] = strings.Trim(v, `'"`)
		}
	}
	for _, k := range []string{"KUBECONFIG", "KNATIVE_LAB_KUBECTL", "KNATIVE_LAB_INGRESS"} {
		if l.env[k] == "" {
			return nil, fmt.Errorf("lab.env has no %s", k)
		}
	}
	l.kubectl = l.env["KNATIVE_LAB_KUBECTL"]
	if l.ingress, err = url.Parse(l.env["KNATIVE_LAB_INGRESS"]); err != nil {
		return nil, err
	}
	if h := l.ingress.Hostname(); h != "127.0.0.1" {
		return nil, fmt.Errorf("KNATIVE_LAB_INGRESS %s is not on 127.0.0.1", l.ingress)
	}
	l.hostIP = l.env["KNATIVE_LAB_HOST_IP"]
	if l.hostIP == "" {
		l.hostIP = l.env["KNATIVE_LAB_NODE_IP"]
	}
	if l.hostIP == "" {
		// The lab's own NATS listens on the host's bridge address.
		if u, err := url.Parse(l.env["KNATIVE_LAB_NATS_URL"]); err == nil && net.ParseIP(u.Hostname()) != nil {
			l.hostIP = u.Hostname()
		}
	}
	if net.ParseIP(l.hostIP) == nil {
		return nil, fmt.Errorf("no host address on the lab bridge (KNATIVE_LAB_HOST_IP, or an IP in KNATIVE_LAB_NATS_URL)")
	}
	if out, err := l.kubectlOut("get", "--raw", "/readyz"); err != nil {
		return nil, fmt.Errorf("API server not ready: %v %s", err, out)
	}
	if l.image, err = l.buildImage(); err != nil {
		return nil, err
	}
	return l, nil
}

// buildImage puts this work tree's rgw-nats into the lab's registry and
// returns its reference. The lab script's image command builds the tree the
// script is in; when the script is another tree's (KNATIVE_LAB_SCRIPT), the
// test builds here and pushes with the lab's own image tool, with the
// Dockerfile's LISTEN_ADDRESS.
func (l *klab) buildImage() (string, error) {
	var cmd *exec.Cmd
	if labScript() == mustAbs(filepath.Join(repoRoot, "scripts/knative-lab.sh")) {
		cmd = exec.Command(labScript(), "image", l.dir)
	} else {
		tool := filepath.Join(l.env["KNATIVE_LAB_BIN"], "labimage")
		if l.env["KNATIVE_LAB_BIN"] == "" || l.env["KNATIVE_LAB_REGISTRY"] == "" {
			return "", fmt.Errorf("lab.env has no KNATIVE_LAB_BIN or KNATIVE_LAB_REGISTRY to push this tree's image with")
		}
		out, err := os.MkdirTemp("", "ke2e-image-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(out)
		bin := filepath.Join(out, "rgw-nats")
		if b, err := exec.Command(filepath.Join(repoRoot, "scripts/build.sh"), bin).CombinedOutput(); err != nil {
			return "", fmt.Errorf("scripts/build.sh: %v\n%s", err, b)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		cmd = exec.Command(tool, "-ref", l.env["KNATIVE_LAB_REGISTRY"]+"/rgw-nats:ke2e-"+hex.EncodeToString(sum[:6]),
			"-bin", "rgw-nats="+bin, "-env", "LISTEN_ADDRESS=[::]:8080")
	}
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tailStr(stderr.String(), 2000))
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return "", fmt.Errorf("%s printed no image", strings.Join(cmd.Args, " "))
	}
	return lines[len(lines)-1], nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (l *klab) cmd(args ...string) *exec.Cmd {
	c := exec.Command(l.kubectl, args...)
	c.Env = append(os.Environ(), "KUBECONFIG="+l.env["KUBECONFIG"])
	return c
}

func (l *klab) kubectlOut(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := l.cmd(args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// k runs kubectl and fails the test when it fails.
func (l *klab) k(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.kubectlOut(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jsonOf runs kubectl get ... -o json into v.
func (l *klab) jsonOf(t *testing.T, v any, args ...string) {
	t.Helper()
	out := l.k(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// namespace creates a namespace for one test and deletes it when the test
// ends (without waiting: Knative's finalizers take their time). Its name
// starts with KNATIVE_E2E_NS_PREFIX (default ke2e-), so that sessions
// sharing a lab can tell their namespaces apart.
func (l *klab) namespace(t *testing.T, name string) string {
	t.Helper()
	prefix := os.Getenv("KNATIVE_E2E_NS_PREFIX")
	if prefix == "" {
		prefix = "ke2e-"
	}
	ns := prefix + name + "-" + randHex(3)
	l.k(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("KNATIVE_E2E_KEEP") != "" {
			t.Logf("kept namespace %s", ns)
			return
		}
		l.kubectlOut("delete", "namespace", ns, "--wait=false")
	})
	return ns
}

// build is what a test applies: a shipped kustomization seen through an
// overlay of the test's own that sets the namespace, the image, the test's
// NATS server and extra settings, as a user would in their own overlay.
type build struct {
	base    string            // e.g. knative/base, knative/overlays/eventing
	config  map[string]string // merged into the ConfigMap rgw-nats-config
	secret  map[string]string // merged into the Secret rgw-nats-nats
	lua     map[string]string // files added to the ConfigMap rgw-nats-lua (the chain runs in name order)
	patches []string          // more kustomize patches entries (YAML list items)
	files   map[string]string // extra files in the overlay's directory
	extra   string            // more kustomization YAML, appended verbatim
}

// render writes the test's overlay and returns its directory.
func (l *klab) render(t *testing.T, ns string, b build) string {
	t.Helper()
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, mustAbs(filepath.Join(repoRoot, b.base)))
	if err != nil {
		t.Fatal(err)
	}
	name, tag, digest := splitImage(l.image)
	var y strings.Builder
	fmt.Fprintf(&y, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources:\n- %s\n", ns, rel)
	// The base names registry.example/rgw-nats/rgw-nats: that is the image
	// name an overlay sees.
	fmt.Fprintf(&y, "images:\n- name: registry.example/rgw-nats/rgw-nats\n  newName: %s\n", name)
	if digest != "" {
		fmt.Fprintf(&y, "  digest: %s\n", digest)
	} else {
		fmt.Fprintf(&y, "  newTag: %s\n", tag)
	}
	y.WriteString("generatorOptions:\n  disableNameSuffixHash: true\n")
	literals := func(name string, kv map[string]string) {
		fmt.Fprintf(&y, "- name: %s\n  behavior: merge\n  literals:\n", name)
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q, _ := json.Marshal(k + "=" + kv[k])
			fmt.Fprintf(&y, "  - %s\n", q)
		}
	}
	if len(b.config) > 0 || len(b.lua) > 0 {
		y.WriteString("configMapGenerator:\n")
		if len(b.config) > 0 {
			literals("rgw-nats-config", b.config)
		}
		if len(b.lua) > 0 {
			y.WriteString("- name: rgw-nats-lua\n  behavior: merge\n  files:\n")
			for n, c := range b.lua {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&y, "  - %s\n", n)
			}
		}
	}
	if len(b.secret) > 0 {
		y.WriteString("secretGenerator:\n")
		literals("rgw-nats-nats", b.secret)
	}
	if len(b.patches) > 0 {
		y.WriteString("patches:\n")
		for _, p := range b.patches {
			y.WriteString(p)
			if !strings.HasSuffix(p, "\n") {
				y.WriteString("\n")
			}
		}
	}
	y.WriteString(b.extra)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, c := range b.files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// apply renders and applies b into ns.
func (l *klab) apply(t *testing.T, ns string, b build) {
	t.Helper()
	dir := l.render(t, ns, b)
	var err error
	var out string
	// The webhooks of a freshly started lab sometimes answer late.
	for attempt := range 5 {
		if out, err = l.kubectlOut("apply", "-k", dir); err == nil {
			return
		}
		t.Logf("apply -k %s (attempt %d): %v", b.base, attempt+1, err)
		time.Sleep(time.Duration(attempt+1) * 3 * time.Second)
	}
	y, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	t.Fatalf("apply -k %s: %v\n%s\nkustomization:\n%s", b.base, err, out, y)
}

// splitImage splits host:port/path:tag or host:port/path@sha256:... .
func splitImage(ref string) (name, tag, digest string) {
	ref, digest, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash && digest != "" {
		return ref[:colon], "", digest
	}
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:], ""
	}
	return ref, "latest", ""
}

// ksvc is a Ready Knative Service.
type ksvc struct {
	ns, name string
	host     string // of its URL: what the ingress routes on
}

// waitReady waits for the Knative Service to be Ready and returns it.
func (l *klab) waitReady(t *testing.T, ns, name string, d time.Duration) ksvc {
	t.Helper()
	start := time.Now()
	if out, err := l.kubectlOut("wait", "-n", ns, "ksvc/"+name, "--for=condition=Ready", fmt.Sprintf("--timeout=%ds", int(d.Seconds()))); err != nil {
		st, _ := l.kubectlOut("get", "-n", ns, "ksvc,configuration,revision,pods,kingress", "-o", "wide")
		ev, _ := l.kubectlOut("get", "-n", ns, "events", "--sort-by=.lastTimestamp")
		cond, _ := l.kubectlOut("get", "-n", ns, "ksvc/"+name, "-o", "jsonpath={.status.conditions}")
		t.Fatalf("ksvc %s/%s not Ready in %s: %v %s\nconditions: %s\n%s\n%s", ns, name, d, err, out, cond, st, tailStr(ev, 4000))
	}
	u := l.k(t, "get", "-n", ns, "ksvc/"+name, "-o", "jsonpath={.status.url}")
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		t.Fatalf("ksvc %s URL %q: %v", name, u, err)
	}
	t.Logf("ksvc %s/%s Ready in %s at %s", ns, name, time.Since(start).Round(100*time.Millisecond), u)
	return ksvc{ns: ns, name: name, host: pu.Host}
}

// revision is the name of the Service rgw-nats' latest Ready revision.
func (l *klab) revision(t *testing.T, ns string) string {
	t.Helper()
	return strings.TrimSpace(l.k(t, "get", "-n", ns, "ksvc/rgw-nats", "-o", "jsonpath={.status.latestReadyRevisionName}"))
}

// patchRevision applies a JSON patch to the Service rgw-nats, waits until
// the revision it makes is Ready and the Service with it, and returns that
// revision's name.
func (l *klab) patchRevision(t *testing.T, ns, patch string) string {
	t.Helper()
	first := l.revision(t, ns)
	l.k(t, "patch", "-n", ns, "ksvc/rgw-nats", "--type=json", "-p", patch)
	var rev string
	if !waitUntil(3*time.Minute, time.Second, func() bool {
		rev = l.revision(t, ns)
		return rev != "" && rev != first
	}) {
		t.Fatalf("no new revision Ready 3 minutes after the change (still %s)", first)
	}
	l.waitReady(t, ns, "rgw-nats", 2*time.Minute)
	return rev
}

// client is a keep-alive HTTP client for the ingress.
func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
		DisableCompression: true,
	}}
}

// post sends body to the Knative Service through the lab's ingress.
func (l *klab) post(ctx context.Context, c *http.Client, host string, body []byte, header http.Header) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.ingress.String()+"/", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), nil
}

// forwarder listens on 127.0.0.1 and passes every request to the lab's
// ingress with Host set to host. RGW names its endpoint by URL only and
// cannot set a Host header; in a cluster, DNS would point the Service's
// host name at the ingress, which is what this stands for. Status codes,
// bodies and Connection: close pass through unchanged.
func (l *klab) forwarder(t *testing.T, ingress *url.URL, host string) string {
	t.Helper()
	target := *ingress
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&target)
			r.Out.Host = host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "forwarder: "+err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// pods lists the pods of a Knative Service's revisions by phase and
// readiness.
type podInfo struct {
	Name, Revision, Phase string
	Ready, Terminating    bool
	Restarts              int
}

func (l *klab) pods(t *testing.T, ns, svc string) []podInfo {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string
				Labels            map[string]string
				DeletionTimestamp *string
			}
			Status struct {
				Phase             string
				ContainerStatuses []struct {
					Name         string
					Ready        bool
					RestartCount int
				}
			}
		}
	}
	l.jsonOf(t, &list, "get", "pods", "-n", ns, "-l", "serving.knative.dev/service="+svc)
	var out []podInfo
	for _, it := range list.Items {
		p := podInfo{Name: it.Metadata.Name, Revision: it.Metadata.Labels["serving.knative.dev/revision"],
			Phase: it.Status.Phase, Terminating: it.Metadata.DeletionTimestamp != nil, Ready: len(it.Status.ContainerStatuses) > 0}
		for _, c := range it.Status.ContainerStatuses {
			p.Ready = p.Ready && c.Ready
			if c.Name == "rgw-nats" {
				p.Restarts = c.RestartCount
			}
		}
		out = append(out, p)
	}
	return out
}

// readyPods counts the pods that are Ready and not terminating.
func readyPods(ps []podInfo) int {
	n := 0
	for _, p := range ps {
		if p.Ready && !p.Terminating {
			n++
		}
	}
	return n
}

// waitUntil polls cond every interval until it holds or d has passed.
func waitUntil(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// figure appends a measured figure to KNATIVE_E2E_FIGURES (default
// ke2e-figures.txt in the temporary directory: the lab's start wipes DIR),
// one line each, for the README.
func (l *klab) figure(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	path := os.Getenv("KNATIVE_E2E_FIGURES")
	if path == "" {
		path = filepath.Join(os.TempDir(), "ke2e-figures.txt")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("figures: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), line)
}

// logsOf returns the rgw-nats container's log of every pod of the Service
// that still exists.
func (l *klab) logsOf(t *testing.T, ns, svc string) string {
	t.Helper()
	out, _ := l.kubectlOut("logs", "-n", ns, "-l", "serving.knative.dev/service="+svc, "-c", "rgw-nats", "--tail=-1", "--prefix", "--max-log-requests=20")
	return out
}

// autoscaler sets keys of knative-serving/config-autoscaler for the test and
// puts the previous values back when it ends.
func (l *klab) autoscaler(t *testing.T, kv map[string]string) {
	t.Helper()
	var cm struct{ Data map[string]string }
	l.jsonOf(t, &cm, "get", "configmap", "-n", "knative-serving", "config-autoscaler")
	old := map[string]any{}
	for k := range kv {
		if v, ok := cm.Data[k]; ok {
			old[k] = v
		} else {
			old[k] = nil // JSON merge patch: remove it again
		}
	}
	patch := func(m any) error {
		b, _ := json.Marshal(map[string]any{"data": m})
		_, err := l.kubectlOut("patch", "configmap", "-n", "knative-serving", "config-autoscaler", "--type=merge", "-p", string(b))
		return err
	}
	if err := patch(kv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := patch(old); err != nil {
			t.Errorf("restoring config-autoscaler: %v", err)
		}
	})
}

// failures counts the rgw-nats log's "request failed" lines of a Service's
// pods by status and reason (up to the first colon): what was behind the
// non-2xx answers a test saw. The log is rate-limited during retry storms,
// so these are lines, not requests.
func (l *klab) failures(t *testing.T, ns, svc string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(l.logsOf(t, ns, svc), "\n") {
		i := strings.Index(line, "{")
		if i < 0 {
			continue
		}
		var m struct {
			Msg    string
			Status int
			Reason string
		}
		if json.Unmarshal([]byte(line[i:]), &m) != nil || m.Msg != "request failed" {
			continue
		}
		reason, _, _ := strings.Cut(m.Reason, ":")
		out[fmt.Sprintf("%d %s", m.Status, reason)]++
	}
	return out
}
