package knative_test

import (
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/function"
)

// attrs are a CloudEvent's context attributes and extensions as strings,
// which is what Trigger filters compare.
type attrs map[string]string

func attrsOf(ev event.Event, withExtensions bool) attrs {
	a := attrs{
		"specversion": ev.SpecVersion(),
		"id":          ev.ID(),
		"type":        ev.Type(),
		"source":      ev.Source(),
		"subject":     ev.Subject(),
	}
	if withExtensions {
		for k, v := range ev.Extensions() {
			a[k] = fmt.Sprint(v)
		}
	}
	return a
}

// matchFilter evaluates one entry of a Trigger's spec.filters the way
// Knative Eventing defines the dialects: exact, prefix and suffix need every
// listed attribute to exist and match; all, any and not combine filters.
func matchFilter(f map[string]any, a attrs) (bool, error) {
	if len(f) != 1 {
		return false, fmt.Errorf("a filter needs exactly one dialect, got %v", f)
	}
	for dialect, arg := range f {
		switch dialect {
		case "exact", "prefix", "suffix":
			cmp := map[string]func(string, string) bool{
				"exact":  func(v, w string) bool { return v == w },
				"prefix": strings.HasPrefix,
				"suffix": strings.HasSuffix,
			}[dialect]
			m := asMap(arg)
			if len(m) == 0 {
				return false, fmt.Errorf("%s with no attributes", dialect)
			}
			for name, want := range m {
				v, ok := a[name]
				if !ok || str(want) == "" || !cmp(v, str(want)) {
					return false, nil
				}
			}
			return true, nil
		case "all", "any":
			for _, sub := range list(arg) {
				ok, err := matchFilter(asMap(sub), a)
				if err != nil {
					return false, err
				}
				if ok == (dialect == "any") {
					return ok, nil
				}
			}
			return dialect == "all", nil
		case "not":
			ok, err := matchFilter(asMap(arg), a)
			return !ok, err
		default:
			return false, fmt.Errorf("dialect %q is not evaluated by this test", dialect)
		}
	}
	panic("unreachable")
}

// triggerMatches applies a Trigger's filters (ANDed), or its legacy
// filter.attributes (exact, ANDed) when it has no filters.
func triggerMatches(tr object, a attrs) (bool, error) {
	filters := list(dig(tr, "spec", "filters"))
	if len(filters) == 0 {
		legacy := asMap(dig(tr, "spec", "filter", "attributes"))
		if len(legacy) == 0 {
			return true, nil
		}
		filters = []any{map[string]any{"exact": map[string]any(legacy)}}
	}
	for _, f := range filters {
		ok, err := matchFilter(asMap(f), a)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// fixtureEvent maps the first record of a sample payload to the CloudEvent
// rgw-nats publishes, optionally moving it to another bucket.
func fixtureEvent(t *testing.T, file, bucket string) event.Event {
	t.Helper()
	recs, err := rgw.Decode(mustRead(t, repoRoot+"/samples/events/"+file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	rec := recs[0]
	if bucket != "" {
		rec.S3.Bucket.Name = bucket
	}
	ev, err := cloudevent.FromRecord(&rec, cloudevent.Options{})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return ev
}

// TestTriggerFilters runs every Trigger of every build against events made
// from real RGW payloads by the service's own mapping: the X-ray bucket's
// uploads must reach rgw-nats in both forms they take in a Broker, nothing
// else must, and above all never rgw-nats' own replies (type +
// REPLY_TYPE_SUFFIX), which would loop through the Broker forever.
func TestTriggerFilters(t *testing.T) {
	const xray = "downstream-xraylab-put-capture.json" // bucket xraylab-0001
	upload := fixtureEvent(t, xray, "")
	deleted := fixtureEvent(t, "pacific-16.2.15/delete.json", upload.Extensions()[cloudevent.ExtBucket].(string))
	otherBucket := fixtureEvent(t, xray, "xraylab-0001-processed")
	multipart := fixtureEvent(t, "pacific-16.2.15/multipart-upload.json", "xraylab-0001")

	triggers := 0
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		cfg := find(objs, "ConfigMap", "rgw-nats-config")
		for _, tr := range ofKind(objs, "Trigger") {
			triggers++
			suffix := configData(t, cfg)["REPLY_TYPE_SUFFIX"]
			if suffix == "" {
				suffix = defaultOf(t, "REPLY_TYPE_SUFFIX")
			}
			reply := maps.Clone(attrsOf(upload, true))
			reply["type"] += suffix
			cases := []struct {
				name string
				a    attrs
				want bool
			}{
				{"upload as rgw-nats publishes it", attrsOf(upload, true), true},
				{"upload as RGW's CloudEvents mode sends it", attrsOf(upload, false), true},
				{"multipart upload", attrsOf(multipart, true), true},
				{"rgw-nats reply", reply, false},
				{"rgw-nats reply without extensions", func() attrs {
					a := attrsOf(upload, false)
					a["type"] += suffix
					return a
				}(), false},
				{"delete in the same bucket", attrsOf(deleted, true), false},
				{"delete in RGW's CloudEvents mode", attrsOf(deleted, false), false},
				{"upload to another bucket", attrsOf(otherBucket, true), false},
				{"upload to another bucket, RGW mode", attrsOf(otherBucket, false), false},
			}
			for _, c := range cases {
				got, err := triggerMatches(tr, c.a)
				if err != nil {
					t.Fatalf("%s %s: %v", dir, tr, err)
				}
				if got != c.want {
					t.Errorf("%s %s: %s (type %s, source %s): match %v, want %v", dir, tr, c.name, c.a["type"], c.a["source"], got, c.want)
				}
			}
		}
	}
	if triggers == 0 {
		t.Fatal("no Trigger in any build")
	}
}

// defaultOf is the default value of one of the service's variables.
func defaultOf(t *testing.T, name string) string {
	t.Helper()
	cfg, err := function.ConfigFromMap(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	// Read the field through the same tag the drift test uses.
	v := reflect.ValueOf(cfg)
	for _, f := range reflect.VisibleFields(v.Type()) {
		if tag, _, _ := strings.Cut(f.Tag.Get("env"), ","); tag == name {
			return fmt.Sprint(v.FieldByIndex(f.Index).Interface())
		}
	}
	t.Fatalf("function.Config has no %s", name)
	return ""
}

var isoDuration = regexp.MustCompile(`^P(T(\d+(\.\d+)?[HMS])+|\d+D)$`)

// TestDeliverySpecs checks what the CRD schemas leave open in every
// delivery block: retries with exponential backoff in ISO-8601, and any
// dead-letter sink pointing at an object of the same build.
func TestDeliverySpecs(t *testing.T) {
	n := 0
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		for _, o := range objs {
			walkDeliveries(o, func(where string, d object) {
				n++
				if r, ok := d["retry"].(int); !ok || r < 3 {
					t.Errorf("%s %s %s: retry %v, want at least 3 (503 means NATS is briefly away)", dir, o, where, d["retry"])
				}
				if str(d["backoffPolicy"]) != "exponential" {
					t.Errorf("%s %s %s: backoffPolicy %v, want exponential", dir, o, where, d["backoffPolicy"])
				}
				if !isoDuration.MatchString(str(d["backoffDelay"])) {
					t.Errorf("%s %s %s: backoffDelay %q is no ISO-8601 duration", dir, o, where, d["backoffDelay"])
				}
				for k := range d {
					switch k {
					case "retry", "backoffPolicy", "backoffDelay", "deadLetterSink":
					default:
						t.Errorf("%s %s %s: delivery field %q is not one we use (typo? feature-flagged?)", dir, o, where, k)
					}
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no delivery spec in any build")
	}
}

func walkDeliveries(o object, fn func(where string, d object)) {
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if k == "delivery" {
					fn(where+".delivery", asMap(sub))
				}
				walk(where+"."+k, sub)
			}
		case []any:
			for i, sub := range v {
				walk(fmt.Sprintf("%s[%d]", where, i), sub)
			}
		}
	}
	walk("", map[string]any(o))
}

// TestReferencesResolve: every ref (Trigger subscriber, sinks, dead-letter
// sinks, SinkBinding subject, Sequence steps and reply) names an object in
// the same build, so `kubectl apply -k` gives a pipeline with no dangling
// end.
func TestReferencesResolve(t *testing.T) {
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		for _, o := range objs {
			var walk func(where string, v any)
			walk = func(where string, v any) {
				switch v := v.(type) {
				case map[string]any:
					for k, sub := range v {
						if m := asMap(sub); (k == "ref" || k == "subject") && m["kind"] != nil && m["name"] != nil {
							target := find(objs, str(m["kind"]), str(m["name"]))
							if target == nil {
								t.Errorf("%s: %s%s.%s points at %s %s, which is not in the build", dir, o, where, k, m["kind"], m["name"])
							} else if target.apiVersion() != str(m["apiVersion"]) {
								t.Errorf("%s: %s%s.%s wants %s, the build has %s", dir, o, where, k, m["apiVersion"], target.apiVersion())
							}
						}
						walk(where+"."+k, sub)
					}
				case []any:
					for i, sub := range v {
						walk(fmt.Sprintf("%s[%d]", where, i), sub)
					}
				}
			}
			walk("", o["spec"])
		}
	}
}
