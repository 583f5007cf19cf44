package knative_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServicePolicy checks, in every build, what a Knative Service of
// rgw-nats must be and the schemas cannot say: it scales to zero and keeps
// its last pod a while, it is probed on the service's health paths, it has
// requests and limits, and it runs locked down.
func TestServicePolicy(t *testing.T) {
	for _, dir := range kustomizations(t) {
		for _, ksvc := range ofKind(built(t, dir), "Service") {
			t.Run(dir, func(t *testing.T) { checkService(t, ksvc) })
		}
	}
}

func checkService(t *testing.T, ksvc object) {
	tmpl := dig(ksvc, "spec", "template")
	ann := asMap(dig(tmpl, "metadata", "annotations"))
	want := map[string]string{
		"autoscaling.knative.dev/class":     "kpa.autoscaling.knative.dev", // the only class that scales to zero
		"autoscaling.knative.dev/min-scale": "0",
		"autoscaling.knative.dev/metric":    "concurrency",
	}
	for k, v := range want {
		if got := str(ann[k]); got != v {
			t.Errorf("annotation %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"target", "max-scale"} {
		if n, err := fmt.Sscan(str(ann["autoscaling.knative.dev/"+k]), new(float64)); n != 1 || err != nil {
			t.Errorf("annotation autoscaling.knative.dev/%s = %q, want a number", k, ann["autoscaling.knative.dev/"+k])
		}
	}
	if d, err := time.ParseDuration(str(ann["autoscaling.knative.dev/scale-to-zero-pod-retention-period"])); err != nil || d < time.Minute {
		t.Errorf("scale-to-zero-pod-retention-period %q: want a duration of a minute or more (%v)", ann["autoscaling.knative.dev/scale-to-zero-pod-retention-period"], err)
	}
	checkScrape(t, tmpl)
	spec := dig(tmpl, "spec")
	if cc, ok := dig(spec, "containerConcurrency").(int); !ok || cc <= 0 {
		t.Errorf("containerConcurrency %v: want a positive cap", dig(spec, "containerConcurrency"))
	}
	containers := list(dig(spec, "containers"))
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := containers[0]
	if p := str(dig(c, "readinessProbe", "httpGet", "path")); p != "/health/readiness" {
		t.Errorf("readiness probe path %q", p)
	}
	if p := str(dig(c, "livenessProbe", "httpGet", "path")); p != "/health/liveness" {
		t.Errorf("liveness probe path %q", p)
	}
	for _, r := range []string{"requests.cpu", "requests.memory", "limits.cpu", "limits.memory"} {
		part, name, _ := strings.Cut(r, ".")
		if dig(c, "resources", part, name) == nil {
			t.Errorf("resources.%s not set", r)
		}
	}
	sc := dig(c, "securityContext")
	for field, want := range map[string]any{
		"runAsNonRoot":             true,
		"readOnlyRootFilesystem":   true,
		"allowPrivilegeEscalation": false,
	} {
		if got := dig(sc, field); got != want {
			t.Errorf("securityContext.%s = %v, want %v", field, got, want)
		}
	}
	if uid, ok := dig(sc, "runAsUser").(int); !ok || uid == 0 {
		t.Errorf("securityContext.runAsUser = %v, want a non-zero uid", dig(sc, "runAsUser"))
	}
	if drop := list(dig(sc, "capabilities", "drop")); !slices.Contains(drop, any("ALL")) {
		t.Errorf("securityContext.capabilities.drop = %v, want ALL", drop)
	}
	if add := list(dig(sc, "capabilities", "add")); len(add) != 0 {
		t.Errorf("securityContext.capabilities.add = %v, want none", add)
	}
	if got := str(dig(sc, "seccompProfile", "type")); got != "RuntimeDefault" {
		t.Errorf("securityContext.seccompProfile.type = %q, want RuntimeDefault", got)
	}
	ports := list(dig(c, "ports"))
	if len(ports) != 1 || dig(ports[0], "containerPort") != 8080 {
		t.Errorf("ports %v: want the one port 8080 that the image's LISTEN_ADDRESS binds", ports)
	}
}

// checkScrape: the revision template asks Prometheus to scrape /metrics on
// a port the container declares.
func checkScrape(t *testing.T, tmpl any) {
	t.Helper()
	ann := asMap(dig(tmpl, "metadata", "annotations"))
	if got := str(ann["prometheus.io/scrape"]); got != "true" {
		t.Errorf("annotation prometheus.io/scrape = %q, want \"true\"", got)
	}
	if got := str(ann["prometheus.io/path"]); got != "/metrics" {
		t.Errorf("annotation prometheus.io/path = %q, want /metrics", got)
	}
	port := str(ann["prometheus.io/port"])
	declared := false
	for _, c := range list(dig(tmpl, "spec", "containers")) {
		for _, p := range list(dig(c, "ports")) {
			if fmt.Sprint(dig(p, "containerPort")) == port {
				declared = true
			}
		}
	}
	if !declared {
		t.Errorf("annotation prometheus.io/port = %q: no container declares that port", port)
	}
}
