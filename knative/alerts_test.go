package knative_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// alertMetrics are the label values the alerts may select, per metric and
// label: values the service really exports (function/metrics.go).
var alertMetrics = map[string]map[string][]string{
	"rgwnats_nats_connected":  {},
	"rgwnats_events_total":    {"outcome": {"published", "dropped", "duplicate", "deadlettered", "failed"}, "reason": nil},
	"rgwnats_requests_total":  {"code": nil, "mode": {"raw", "binary", "structured", "batch"}},
	"rgwnats_lua_calls_total": {"result": {"ok", "error", "timeout"}},
}

// TestPrometheusRule checks knative/grafana/rgw-nats-alerts.yaml (its schema
// is checked with every manifest by TestManifestFilesValidateStrict): the
// four alerts the README promises, each with a duration, a severity and a
// summary; expressions on metrics the service exports, with label values it
// exports, counters only through rate or increase, grouping only by bounded
// labels or the pod's own.
func TestPrometheusRule(t *testing.T) {
	var rule struct {
		Kind string
		Spec struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Alert, Expr, For string
					Labels           map[string]string
					Annotations      map[string]string
				}
			}
		}
	}
	if err := yaml.Unmarshal(mustRead(t, "grafana/rgw-nats-alerts.yaml"), &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) != 1 {
		t.Fatalf("kind %q, %d groups", rule.Kind, len(rule.Spec.Groups))
	}
	metric := regexp.MustCompile(`(rgwnats_[a-z_]+)(\{[^}]*\})?(\[[0-9]+[smh]\])?`)
	matcher := regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	grouping := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	var alerts []string
	for _, r := range rule.Spec.Groups[0].Rules {
		alerts = append(alerts, r.Alert)
		if d, err := time.ParseDuration(r.For); err != nil || d < time.Minute {
			t.Errorf("%s: for %q: want a minute or more", r.Alert, r.For)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: summary or description missing", r.Alert)
		}
		refs := metric.FindAllStringSubmatch(r.Expr, -1)
		if len(refs) == 0 {
			t.Errorf("%s: no rgw-nats metric in %q", r.Alert, r.Expr)
		}
		for _, m := range refs {
			labels, ok := alertMetrics[m[1]]
			if !ok {
				t.Errorf("%s: %s is not a metric the service exports", r.Alert, m[1])
				continue
			}
			counter := strings.HasSuffix(m[1], "_total")
			if counter != (m[3] != "") || counter && !regexp.MustCompile(`(rate|increase)\(`+m[1]).MatchString(r.Expr) {
				t.Errorf("%s: counter %s not read through rate or increase over a range", r.Alert, m[1])
			}
			for _, mm := range matcher.FindAllStringSubmatch(m[2], -1) {
				values, ok := labels[mm[1]]
				switch {
				case !ok:
					t.Errorf("%s: %s has no label %s", r.Alert, m[1], mm[1])
				case values != nil && mm[2] == "=" && !slices.Contains(values, mm[3]):
					t.Errorf("%s: %s{%s} is never %q", r.Alert, m[1], mm[1], mm[3])
				}
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(r.Expr, -1) {
			for l := range strings.SplitSeq(g[1], ",") {
				if l = strings.TrimSpace(l); l != "namespace" && l != "pod" && l != "reason" {
					t.Errorf("%s: grouped by %q", r.Alert, l)
				}
			}
		}
	}
	want := []string{"RgwNatsNATSDisconnected", "RgwNatsDeadLettersRising", "RgwNats5xxRatioHigh", "RgwNatsLuaDeadlineHits"}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}
