package knative_test

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardMetrics are the metrics the service exports, with the labels the
// dashboard may group by; histograms are read through their _bucket series.
var dashboardMetrics = map[string][]string{
	"rgwnats_requests_total":            {"mode", "code"},
	"rgwnats_events_total":              {"outcome"},
	"rgwnats_publish_duration_seconds":  {"le"},
	"rgwnats_jetstream_acks_total":      {"duplicate"},
	"rgwnats_lua_calls_total":           {"result"},
	"rgwnats_lua_call_duration_seconds": {"le"},
	"rgwnats_lua_states":                {"state"},
	"rgwnats_nats_connected":            {},
	"rgwnats_nats_reconnects_total":     {},
	"rgwnats_script_reloads_total":      {"result"},
	"rgwnats_build_info":                {"version", "revision"},
}

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// TestGrafanaDashboard checks knative/grafana/rgw-nats.json the way Grafana
// and Prometheus would read it: unique panel ids on a 24-column grid, every
// query on the dashboard's Prometheus variable, only metrics the service
// exports (each of them shown), counters only through rate or increase,
// histograms through their buckets, grouping only by bounded labels.
func TestGrafanaDashboard(t *testing.T) {
	var d struct {
		UID           string           `json:"uid"`
		Title         string           `json:"title"`
		SchemaVersion int              `json:"schemaVersion"`
		Panels        []dashboardPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(mustRead(t, "grafana/rgw-nats.json"))))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource and instance", vars)
	}

	metricRef := regexp.MustCompile(`rgwnats_[a-z_]+`)
	grouping := regexp.MustCompile(`\b(?:by|ignoring|on)\s*\(([^)]*)\)`)
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("panel %q: id %d is not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, q := range p.Targets {
			if strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") || strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") || strings.Count(q.Expr, "[") != strings.Count(q.Expr, "]") {
				t.Errorf("panel %q: unbalanced query %s", p.Title, q.Expr)
			}
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query ignores the instance variable: %s", p.Title, q.Expr)
			}
			var labels []string // what this query may group by
			for _, loc := range metricRef.FindAllStringIndex(q.Expr, -1) {
				name := q.Expr[loc[0]:loc[1]]
				base, isBucket := strings.CutSuffix(name, "_bucket")
				if _, ok := dashboardMetrics[base]; !ok || isBucket != strings.HasSuffix(base, "_seconds") {
					t.Errorf("panel %q: %s is not an exported series", p.Title, name)
					continue
				}
				used[base] = true
				labels = append(labels, dashboardMetrics[base]...)
				before := q.Expr[:loc[0]]
				if (strings.HasSuffix(name, "_total") || isBucket) && !strings.HasSuffix(before, "rate(") && !strings.HasSuffix(before, "increase(") {
					t.Errorf("panel %q: counter %s read without rate or increase: %s", p.Title, name, q.Expr)
				}
				if isBucket && !strings.Contains(q.Expr, "histogram_quantile(") {
					t.Errorf("panel %q: %s outside histogram_quantile", p.Title, name)
				}
			}
			for _, m := range grouping.FindAllStringSubmatch(q.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					if l = strings.TrimSpace(l); l != "" && l != "instance" && !slices.Contains(labels, l) {
						t.Errorf("panel %q: groups by %q, which its metrics do not have: %s", p.Title, l, q.Expr)
					}
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(dashboardMetrics)) {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}
