package subject

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

func TestToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"photos", "photos"},
		{"my-bucket_1", "my-bucket_1"},
		{"", "_"},
		{"logs.eu", "logs%2Eeu"},
		{"a b/c.jpg", "a%20b%2Fc%2Ejpg"},
		{"*", "%2A"},
		{">", "%3E"},
		{"$JS", "%24JS"},
		{"100%", "100%25"},
		{"ü", "%C3%BC"},
		{"tab\there", "tab%09here"},
		{"odd dir/ünïcode +plus&amp=%41.txt", "odd%20dir%2F%C3%BCn%C3%AFcode%20%2Bplus%26amp%3D%2541%2Etxt"},
	} {
		got := Token(c.in)
		if got != c.want {
			t.Errorf("Token(%q) = %q, want %q", c.in, got, c.want)
		}
		if !Valid(got) || strings.Contains(got, ".") {
			t.Errorf("Token(%q) = %q is not exactly one valid token", c.in, got)
		}
		if c.in != "" {
			if back, err := Unescape(got); err != nil || back != c.in {
				t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, c.in)
			}
		}
	}
}

func TestUnescapeErrors(t *testing.T) {
	for _, bad := range []string{"%", "%4", "abc%zz", "%G0"} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted a broken escape", bad)
		}
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"rgw.photos.ObjectCreated.Put": true,
		"a":                            true,
		"a.b*":                         true, // '*' inside a token is no wildcard
		"":                             false,
		".a":                           false,
		"a.":                           false,
		"a..b":                         false,
		"a b":                          false,
		"a.*.b":                        false,
		"a.>":                          false,
		"*":                            false,
		"a\tb":                         false,
		"a\x7fb":                       false,
		strings.Repeat("a", MaxLen):    true,
		strings.Repeat("a", MaxLen+1):  false, // past nats-server's protocol line
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

func rgwEvent() *event.Event {
	ev := event.New()
	ev.SetID("1713693798.430517.a600.cfg")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSource("ceph:s3.default.logs.eu")
	ev.SetSubject("x-ray/2024 scan.jpeg")
	ev.SetExtension(cloudevent.ExtBucket, "logs.eu")
	ev.SetExtension(cloudevent.ExtObjectKey, "x-ray/2024 scan.jpeg")
	ev.SetExtension(cloudevent.ExtEventName, "ObjectCreated:Put")
	ev.SetExtension("team", "radiology")
	return &ev
}

func TestExecute(t *testing.T) {
	ev := rgwEvent()
	for _, c := range []struct{ tmpl, want string }{
		{"rgw.{bucket}.{event}", "rgw.logs%2Eeu.ObjectCreated.Put"},
		{"rgw.{bucket}.{key}", "rgw.logs%2Eeu.x-ray%2F2024%20scan%2Ejpeg"},
		{"{type}", "com%2Eamazonaws%2EObjectCreated%3APut"},
		{"s.{source}", "s.ceph%3As3%2Edefault%2Elogs%2Eeu"},
		{"ids.{id}", "ids.1713693798%2E430517%2Ea600%2Ecfg"},
		{"k.{subject}", "k.x-ray%2F2024%20scan%2Ejpeg"},
		{"teams.{ext:team}.{ext:missing}", "teams.radiology._"},
		{"fixed.subject", "fixed.subject"},
		{"pre-{bucket}-post.x", "pre-logs%2Eeu-post.x"},
	} {
		tm, err := Parse(c.tmpl)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.tmpl, err)
		}
		if got := tm.Execute(ev); got != c.want || !Valid(got) {
			t.Errorf("%q -> %q, want %q", c.tmpl, got, c.want)
		}
	}
}

func TestExecuteEventName(t *testing.T) {
	tm, _ := Parse("rgw.{event}")
	ev := rgwEvent()
	for name, want := range map[string]string{
		"s3:ObjectCreated:Put":                  "rgw.ObjectCreated.Put",
		"ObjectLifecycle:Expiration:Current":    "rgw.ObjectLifecycle.Expiration.Current",
		"":                                      "rgw._",
		"Weird::Name":                           "rgw.Weird._.Name",
		"Replication:Create":                    "rgw.Replication.Create",
		"ObjectCreated:Put.With.Dots and space": "rgw.ObjectCreated.Put%2EWith%2EDots%20and%20space",
	} {
		ev.SetExtension(cloudevent.ExtEventName, name)
		if got := tm.Execute(ev); got != want || !Valid(got) {
			t.Errorf("event %q -> %q, want %q", name, got, want)
		}
	}
}

func TestExecuteOnZeroEvent(t *testing.T) {
	tm, _ := Parse("rgw.{bucket}.{event}.{type}")
	if got := tm.Execute(&event.Event{}); got != "rgw._._._" {
		t.Errorf("zero event -> %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"", "rgw.{bucket", "rgw.{nope}", "rgw.{ext:}", "rgw..{bucket}", "rgw.{bucket}.", "rgw.*", "rgw.>", "a b.{bucket}", "rgw}.{bucket}", ".{bucket}"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted a template that cannot make a valid subject", bad)
		}
	}
}

func TestStreamSubjects(t *testing.T) {
	for tmpl, want := range map[string]string{
		"rgw.{bucket}.{event}": "rgw.>",
		"a.b.{key}":            "a.b.>",
		"rgw.x{bucket}":        "rgw.>",
		"{bucket}.events":      ">",
		"fixed.subject":        "fixed.subject",
	} {
		tm, err := Parse(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := tm.StreamSubjects(); got != want {
			t.Errorf("%q: %q, want %q", tmpl, got, want)
		}
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "photos", "a.b c", "odd dir/ünïcode +plus&amp=%41.txt", "*", ">", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		// A token past MaxLen is one token still, but no subject Valid
		// accepts (nats-server's protocol line): check its bytes instead.
		valid := Valid(tok) || len(tok) > MaxLen && Valid(tok[:MaxLen])
		if !valid || strings.ContainsAny(tok, ". *>") || !utf8.ValidString(tok) {
			t.Fatalf("Token(%q) = %q is not one valid ASCII token", s, tok)
		}
		if s == "" {
			return
		}
		back, err := Unescape(tok)
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"rgw.{bucket}.{event}", "{ext:x}", "a.{key}.b", "{", "}", "a..b"} {
		f.Add(s, "bucket.name", "key with space", "ObjectCreated:Put")
	}
	f.Fuzz(func(t *testing.T, tmpl, bucket, key, name string) {
		tm, err := Parse(tmpl)
		if err != nil {
			return
		}
		ev := event.New()
		ev.SetExtension(cloudevent.ExtBucket, bucket)
		ev.SetExtension(cloudevent.ExtObjectKey, key)
		ev.SetExtension(cloudevent.ExtEventName, name)
		if got := tm.Execute(&ev); !Valid(got) && !(len(got) > MaxLen && tokensValid(got)) {
			t.Fatalf("template %q made invalid subject %q", tmpl, Short(got))
		}
	})
}

// tokensValid reports whether every token of s is one Valid would accept
// were it not too long: long values make long subjects, which the
// publisher refuses as permanent (see natsout), never a malformed one.
func tokensValid(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if len(tok) > MaxLen {
			tok = tok[:MaxLen]
		}
		if !Valid(tok) {
			return false
		}
	}
	return true
}

func BenchmarkExecute(b *testing.B) {
	tm, _ := Parse("rgw.{bucket}.{event}")
	ev := rgwEvent()
	b.ReportAllocs()
	for b.Loop() {
		tm.Execute(ev)
	}
}
