package adapter

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/ingress"
)

// TestAnswerTable walks every reason through every sender kind: the answer,
// the metric label and the span status must say the same thing, and the
// answers are those of the README's status table, written out here again
// so that the table cannot drift from it unnoticed.
func TestAnswerTable(t *testing.T) {
	want := map[Reason]int{ // the answer to a CloudEvents sender
		ReasonNone: 202, ReasonDecode: 400, ReasonUnsupported: 415, ReasonTooLarge: 413,
		ReasonScript: 422, ReasonLimit: 422, ReasonOutput: 422, ReasonNoStream: 422, ReasonPoison: 422,
		ReasonTimeout: 503, ReasonMemory: 503, ReasonBusy: 429, ReasonNATS: 503, ReasonShutdown: 503, ReasonTable: 503,
		ReasonDenied: 422,
		ReasonMethod: 405, ReasonUnauthorized: 401, ReasonForbidden: 403, ReasonUnready: 503, ReasonSlowBody: 408,
	}
	senders := []struct {
		header ingress.Header
		want   Sender
	}{
		{ingress.Header{"Content-Type": {"application/json"}}, FromRGW},
		{ingress.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"s"}, "Ce-Type": {"t"}}, FromCloudEvents},
		{ingress.Header{"Content-Type": {"application/cloudevents+json"}}, FromCloudEvents},
		{ingress.Header{"Content-Type": {"application/cloudevents-batch+json"}}, FromCloudEvents},
		// RGW's own cloudevents=true: binary mode, still RGW.
		{ingress.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"ceph:s3"}, "Ce-Type": {"com.amazonaws.ObjectCreated:Put"}}, FromRGW},
	}
	modes := map[ingress.Mode]bool{}
	names := map[string]Reason{}
	for r := ReasonNone; r < numReasons; r++ {
		if _, ok := want[r]; !ok {
			t.Errorf("reason %d (%s) has no expected answer here", r, r)
		}
		if r != ReasonNone {
			if r.String() == "" || r.String() == "unknown" {
				t.Errorf("reason %d has no name", r)
			}
			if other, dup := names[r.String()]; dup {
				t.Errorf("reasons %d and %d share the label %q", r, other, r)
			}
			names[r.String()] = r
			if !slices.Contains(Reasons[:], r) {
				t.Errorf("reason %s is not in Reasons: its metric label is not made in advance", r)
			}
		}
		for _, s := range senders {
			mode, _ := ingress.Sender(s.header)
			modes[mode] = true
			sender := SenderOf(s.header)
			if sender != s.want {
				t.Fatalf("SenderOf(%v) = %d, want %d", s.header, sender, s.want)
			}
			a := AnswerFor(r.Class(), r, sender)
			code := want[r]
			if r == ReasonBusy && sender == FromRGW {
				code = 503 // RGW treats every non-2xx alike: the same 503 as any transient failure
			}
			if a.Status != code {
				t.Errorf("%s from %s (sender %d): %d, want %d", r, mode, sender, a.Status, code)
			}
			if a.Reason != r || a.Class != r.Class() {
				t.Errorf("%s: answer says %s %s", r, a.Reason, a.Class)
			}
			// Retry-After exactly with a transient failure, and then 503 or 429.
			if a.Retry != (r.Class() == Transient) || a.Retry && a.Status != 503 && a.Status != 429 {
				t.Errorf("%s from %s: status %d, retry %v, class %s", r, mode, a.Status, a.Retry, r.Class())
			}
			if a.Delivered() != (a.Status/100 == 2) || a.Delivered() != (r == ReasonNone) {
				t.Errorf("%s: delivered %v with status %d", r, a.Delivered(), a.Status)
			}
			if a.SpanError != (a.Status >= 500) {
				t.Errorf("%s: span error %v with status %d", r, a.SpanError, a.Status)
			}
			if wantLevel := slog.LevelWarn; r == ReasonNone && a.Level != slog.LevelDebug || r != ReasonNone && a.Level != wantLevel {
				t.Errorf("%s: log level %v", r, a.Level)
			}
		}
	}
	if len(modes) != len(ingress.Modes) {
		t.Errorf("the senders cover modes %v, want all of %v", modes, ingress.Modes)
	}
	for i, s := range Statuses {
		if int(s) != i {
			t.Errorf("Statuses[%d] is %v: keep them in value order", i, s)
		}
	}
}

// TestResultAnswer: a request's answer follows its reason and sender; a
// request whose events all made it is delivered whatever reason it keeps
// (a dead-lettered request keeps its reason for the metric).
func TestResultAnswer(t *testing.T) {
	for _, c := range []struct {
		res  Result
		want int
	}{
		{Result{}, 202},
		{Result{Reason: ReasonDecode, DeadLettered: true, Sender: FromRGW}, 202},
		{Result{Class: Permanent, Reason: ReasonDecode}, 400},
		{Result{Class: Transient, Reason: ReasonBusy}, 429},
		{Result{Class: Transient, Reason: ReasonBusy, Sender: FromRGW}, 503},
		{Result{Class: Permanent, Reason: ReasonScript, Sender: FromRGW}, 422},
		// A permanent failure whose dead letter NATS did not take: the
		// sender must keep it, a retry can help.
		{Result{Class: Transient, Reason: ReasonScript, Sender: FromRGW}, 503},
		{Result{Class: Transient, Reason: ReasonNoStream}, 503},
	} {
		if got := c.res.Answer().Status; got != c.want {
			t.Errorf("%+v: %d, want %d", c.res, got, c.want)
		}
	}
}

// TestRequestReason: busy is the request's reason only when every transient
// failure of it was busy (then a CloudEvents sender gets 429), and a
// transient failure wins over a permanent one (a retry can help).
func TestRequestReason(t *testing.T) {
	for _, c := range []struct {
		name    string
		reasons []Reason
		want    Reason
	}{
		{"busy only", []Reason{ReasonBusy, ReasonBusy}, ReasonBusy},
		{"busy then nats", []Reason{ReasonBusy, ReasonNATS}, ReasonNATS},
		{"nats then busy", []Reason{ReasonNATS, ReasonBusy}, ReasonNATS},
		{"script then timeout", []Reason{ReasonScript, ReasonTimeout}, ReasonTimeout},
		{"script then limit", []Reason{ReasonScript, ReasonLimit}, ReasonScript},
	} {
		var res Result
		for _, r := range c.reasons {
			res.Outcomes = append(res.Outcomes, Outcome{Status: Failed, Class: r.Class(), Reason: r})
		}
		res.summarize()
		if res.Reason != c.want || res.Class != c.want.Class() {
			t.Errorf("%s: %s %s, want %s", c.name, res.Class, res.Reason, c.want)
		}
	}
}
