package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mustAgree are the Request fields a notification record carries, so a
// postRequest script must read the same values in RGW and in rgw-nats.
var mustAgree = []string{"op", "bucket", "bucket.id", "bucket.tenant", "bucket.owner", "object", "object.size",
	"object.instance", "user", "user.tenant", "id", "rgwid", "usermeta", "tags", "status", "dialect"}

// luaCompare runs testdata/request-fields.lua inside the real RGW (postRequest
// context, RGWDebugLog read from RGW's log at debug_rgw 20) and inside
// rgw-nats on the notification of the same PUT, and compares what each saw.
func (s *suite) luaCompare(t *testing.T, a *adapter, file string) {
	l := s.lab
	// Inside the lab's directory: Tentacle's radosgw-admin sees only that.
	src, err := os.ReadFile("testdata/request-fields.lua")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(l.dir, "request-fields.lua")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	l.admin(t, "script", "put", "--infile="+script, "--context=postRequest")
	defer l.admin(t, "script", "rm", "--context=postRequest")
	l.setDebugRGW(t, 20)
	defer l.setDebugRGW(t, 1)
	info, err := os.Stat(l.env["CEPH_LAB_RGW_LOG"])
	if err != nil {
		t.Fatal(err)
	}
	offset := info.Size()

	l.run(t, "s3api", "put-object", "--bucket", "e2e-lua", "--key", "lua dir/obj ü+1.txt", "--body", file,
		"--metadata", "color=blue,shape=round", "--tagging", "team=storage&tier=gold")

	var inRGW, inAdapter string
	waitUntil(context.Background(), synchronous, func() bool {
		if inRGW == "" {
			b, _ := l.rgwLog(t, offset)
			for _, line := range strings.Split(string(b), "\n") {
				if m := fieldLine.FindStringSubmatch(line); m != nil {
					inRGW = m[1]
				}
			}
		}
		if inAdapter == "" {
			for _, line := range a.logLines() {
				if msg, _ := line["msg"].(string); strings.HasPrefix(msg, "E2E-LUA ") {
					inAdapter = strings.TrimPrefix(msg, "E2E-LUA ")
				}
			}
		}
		return inRGW != "" && inAdapter != ""
	})
	if inRGW == "" || inAdapter == "" {
		t.Fatalf("script output missing: RGW %q, rgw-nats %q\nrgw-nats log:\n%s", inRGW, inAdapter, tail([]byte(a.logs.String()), 3000))
	}
	rgw, ours := parseFields(inRGW), parseFields(inAdapter)
	t.Logf("RGW:      %s", inRGW)
	t.Logf("rgw-nats: %s", inAdapter)
	agree := mustAgree
	if l.release == "tentacle" {
		// Tentacle's Request.ObjectOwner has no User (its Request.User has
		// the writer, which Pacific's scripts cannot read): RGW says nil
		// where rgw-nats, as Pacific, has the record's principal.
		agree = nil
		for _, k := range mustAgree {
			if k != "user" && k != "user.tenant" {
				agree = append(agree, k)
			}
		}
		if rgw["user"] != "nil" || rgw["user.tenant"] != "nil" {
			t.Errorf("tentacle Request.ObjectOwner.User: Id %q, Tenant %q, want nil (none)", rgw["user"], rgw["user.tenant"])
		}
		if ours["user"] != rgw["bucket.owner"] {
			t.Errorf("rgw-nats Request.ObjectOwner.User.Id %q, want the writer %q", ours["user"], rgw["bucket.owner"])
		}
	}
	for _, k := range agree {
		if rgw[k] != ours[k] {
			t.Errorf("Request %s: RGW %q, rgw-nats %q", k, rgw[k], ours[k])
		}
	}
	// Time: the same layout, and the same moment within a few seconds
	// (RGW's is the request's start, the record's is the notification's).
	shape := regexp.MustCompile(`[0-9]`)
	if shape.ReplaceAllString(rgw["time"], "9") != shape.ReplaceAllString(ours["time"], "9") {
		t.Errorf("Request.Time layout: RGW %q, rgw-nats %q", rgw["time"], ours["time"])
	} else if tr, err1 := parseLuaTime(rgw["time"]); err1 == nil {
		if to, err2 := parseLuaTime(ours["time"]); err2 == nil && (to.Sub(tr) > 3*time.Second || tr.Sub(to) > 3*time.Second) {
			t.Errorf("Request.Time: RGW %s, rgw-nats %s", tr, to)
		}
	}
	for k, v := range rgw {
		if ours[k] != v && !contains(mustAgree, k) && k != "time" {
			t.Logf("differs (documented in samples/lua/README.md): %s: RGW %q, rgw-nats %q", k, v, ours[k])
		}
	}
}

func parseLuaTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Parse(time.RFC3339, s)
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
