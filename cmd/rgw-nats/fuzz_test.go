package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// FuzzParseSince: any text is an error or a time not after now for an age.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"10m", "1h30m", "0s", "-1s", "2026-12-01T21:00:00Z", "2026-12-01T21:00:00.5+01:00", "yesterday", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err != nil {
			return
		}
		if _, derr := time.ParseDuration(s); derr == nil && got.After(now) {
			t.Errorf("parseSince(%q) = %v, after now", s, got)
		}
	})
}

// FuzzPrintReceived: whatever a message holds, tail prints it starting with
// one intact header line naming its subject, and the dead-letter reason or
// decoding error on lines of their own.
func FuzzPrintReceived(f *testing.F) {
	f.Add([]byte(`{"stream":"RGW","seq":1}`), "", "", "")
	f.Add([]byte(`{"specversion":"1.0","id":"a","type":"t","source":"/s","data":{"x":1}}`), "application/cloudevents+json", "", "")
	f.Add([]byte("{\"Records\":[]}"), "application/json", "script", "lua: x.lua:1: boom\nsecond line")
	f.Add([]byte{0xff, 0xfe, '\n'}, "", "", "")
	f.Add([]byte("plain\ntext"), "text/plain", "decode", "")
	f.Fuzz(func(t *testing.T, data []byte, contentType, reason, errText string) {
		h := nats.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if reason != "" {
			h.Set("Rgwnats-Reason", reason)
			h.Set("Rgwnats-Error", errText)
		}
		var out bytes.Buffer
		printReceived(&out, received{Msg: &nats.Msg{Subject: "rgw.b.e", Header: h, Data: data}})
		first, rest, _ := strings.Cut(out.String(), "\n")
		if !strings.HasPrefix(first, "--- rgw.b.e") {
			t.Fatalf("header line %q", first)
		}
		if strings.Contains(first, "(not a CloudEvent)") && !strings.HasPrefix(rest, "  error:   ") {
			t.Fatalf("no one-line reason after %q:\n%s", first, out.String())
		}
	})
}
