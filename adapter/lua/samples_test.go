package lua

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// The samples in samples/lua, run on the captured payloads in samples/events.

var testKey = []byte("sample-test-key")

func sample(t testing.TB, name string, opts ...Option) *Engine {
	t.Helper()
	e, err := New(context.Background(), filepath.Join("..", "..", "samples", "lua", name),
		append([]Option{WithReload(0), WithTimeout(testTimeout), WithHMACKey(testKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func keyedHex(s string) string {
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

// allFixtures lists every payload of samples/events.
func allFixtures(*testing.T) []string { return events.Names() }

func TestSampleAnonymizeXray(t *testing.T) {
	e := sample(t, "anonymize.lua")
	for _, envelope := range []bool{false, true} {
		in := fixture(t, "downstream-xraylab-put-capture.json", cloudevent.Options{Envelope: envelope})
		before := string(in.Data())
		ev := one(t, transformOne(t, e, in))
		wantKey := "demo_XXX_" + keyedHex("6580")[:12] + "_XXXX-XX-XX_2017-04-27.jpeg"
		rec := record(t, ev)
		if got := path(rec, "s3", "object", "key"); got != wantKey {
			t.Errorf("key %v, want %s", got, wantKey)
		}
		if ev.Subject() != wantKey || ev.Extensions()["objectkey"] != wantKey {
			t.Errorf("subject %q, objectkey %v", ev.Subject(), ev.Extensions()["objectkey"])
		}
		pseudonym := "anon-" + keyedHex("xraylab-0001")[:16]
		if path(rec, "userIdentity", "principalId") != pseudonym || path(rec, "s3", "bucket", "ownerIdentity", "principalId") != pseudonym {
			t.Errorf("ids not pseudonymised: %v", rec)
		}
		if _, ok := rec["requestParameters"].(map[string]any)["sourceIPAddress"]; ok {
			t.Error("source IP kept")
		}
		if envelope != bytes.HasPrefix(ev.Data(), []byte(`{"Records":[`)) {
			t.Errorf("envelope %v lost: %s", envelope, ev.Data())
		}
		// Nothing of the patient is left anywhere in what is published.
		published, _ := json.Marshal(ev)
		for _, secret := range []string{"Micheal", "Phillips", "6580", "1947", "05-22"} {
			if bytes.Contains(published, []byte(secret)) {
				t.Errorf("published event still holds %q: %s", secret, published)
			}
		}
		if path(rec, "s3", "object", "size") != float64(108622) || !strings.Contains(string(ev.Data()), `"size":108622`) ||
			!strings.Contains(string(ev.Data()), `"tags":[]`) {
			t.Errorf("data damaged: %s", ev.Data())
		}
		if string(in.Data()) != before {
			t.Error("input modified")
		}
	}
}

func TestSampleAnonymizeEveryFixture(t *testing.T) {
	e := sample(t, "anonymize.lua")
	for _, name := range allFixtures(t) {
		in := fixture(t, name, cloudevent.Options{})
		key := in.Subject()
		ev := one(t, transformOne(t, e, in))
		rec := record(t, ev)
		if id, _ := path(rec, "userIdentity", "principalId").(string); !strings.HasPrefix(id, "anon-") {
			t.Errorf("%s: principal %q", name, id)
		}
		if xray := name == "downstream-xraylab-put-capture.json"; xray == (ev.Subject() == key) { // only X-ray style keys change
			t.Errorf("%s: key %q changed to %q", name, key, ev.Subject())
		}
	}
}

func TestSampleAnonymizeNeedsTheKey(t *testing.T) {
	e, err := New(context.Background(), filepath.Join("..", "..", "samples", "lua", "anonymize.lua"), WithReload(0), WithTimeout(testTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "LUA_HMAC_KEY") {
		t.Fatalf("error %v", err)
	}
}

func TestSampleRoute(t *testing.T) {
	e := sample(t, "route.lua")
	for name, want := range map[string]string{
		"pacific-16.2.15/put-with-meta.json":           "rgw.nb-main.dir.docs",
		"pacific-16.2.15/put-special-key.json":         "rgw.nb-main.dir.odd%20dir",
		"pacific-16.2.15/delete.json":                  "rgw.nb-main.removed",
		"pacific-16.2.15/versioned-delete-marker.json": "rgw.nb-ver.removed",
		"reef-put-capture.json":                        "rgw.jayanth.created",
		"docs-example-lenient.json":                    "rgw.mybucket1.created",
	} {
		outs := transformOne(t, e, fixture(t, name, cloudevent.Options{}))
		if len(outs) != 1 || outs[0].Subject != want {
			t.Errorf("%s: subject %q, want %s", name, outs[0].Subject, want)
		}
	}
	// Metadata wins: the same upload carrying x-amz-meta-route.
	in := fixture(t, "pacific-16.2.15/put-with-meta.json", cloudevent.Options{Envelope: true})
	in.DataEncoded = bytes.Replace(in.DataEncoded, []byte(`"x-amz-meta-color","val":"blue"`), []byte(`"x-amz-meta-route","val":"Images.Hot"`), 1)
	if outs := transformOne(t, e, in); outs[0].Subject != "route.Images%2EHot" {
		t.Errorf("metadata route: subject %q", outs[0].Subject)
	}
}

func TestSampleFilter(t *testing.T) {
	e := sample(t, "filter.lua")
	for name, kept := range map[string]bool{
		"downstream-xraylab-put-capture.json":   true,  // .jpeg created
		"docs-example-lenient.json":             true,  // .jpg created
		"reef-put-capture.json":                 false, // .json
		"pacific-16.2.15/put-with-meta.json":    false, // .txt
		"pacific-16.2.15/delete.json":           false, // removed
		"pacific-16.2.15/multipart-upload.json": false, // .bin
	} {
		in := fixture(t, name, cloudevent.Options{})
		outs := transformOne(t, e, in)
		if kept != (len(outs) == 1) || kept && outs[0].Event != in {
			t.Errorf("%s: outputs %+v, kept %v", name, outs, kept)
		}
	}
	removedImage := fixture(t, "docs-example-lenient.json", cloudevent.Options{})
	removedImage.SetType(cloudevent.TypePrefix + "ObjectRemoved:Delete")
	if outs := transformOne(t, e, removedImage); len(outs) != 0 {
		t.Errorf("a removed image was kept")
	}
}

func TestSampleFanout(t *testing.T) {
	e := sample(t, "fanout.lua")
	in := fixture(t, "pacific-16.2.15/put-with-meta.json", cloudevent.Options{})
	outs := transformOne(t, e, in)
	if len(outs) != 2 {
		t.Fatalf("outputs %+v", outs)
	}
	internal, public := outs[0], outs[1]
	if internal.Subject != "internal.rgw.nb-main" || internal.Event != in {
		t.Errorf("internal output %+v: want the event as received", internal)
	}
	if public.Subject != "public.rgw.nb-main" || public.Header["Rgw-Nats-Redacted"][0] != "true" {
		t.Errorf("public output %+v", public)
	}
	rec := record(t, public.Event)
	if rec["userIdentity"] != nil || rec["requestParameters"] != nil || path(rec, "s3", "bucket", "ownerIdentity") != nil {
		t.Errorf("public copy keeps identities: %v", rec)
	}
	if strings.Contains(string(public.Event.Data()), "alice") || public.Event.ID() != in.ID() {
		t.Errorf("public copy: %s", public.Event)
	}
}

// xrayConsumer reads an event as the risk-assessment service does.
func xrayConsumer(t *testing.T, ev *event.Event) (eventName, bucket, key string) {
	t.Helper()
	var data struct {
		Records []struct {
			EventName string `json:"eventName"`
			S3        struct {
				Bucket struct{ Name string } `json:"bucket"`
				Object struct{ Key string }  `json:"object"`
			} `json:"s3"`
		}
	}
	if err := json.Unmarshal(ev.Data(), &data); err != nil || len(data.Records) == 0 {
		t.Fatalf("consumer cannot read %s: %v", ev.Data(), err)
	}
	r := data.Records[0]
	return r.EventName, r.S3.Bucket.Name, r.S3.Object.Key
}

func TestSampleXray(t *testing.T) {
	e := sample(t, "xray.lua")
	for _, envelope := range []bool{false, true} {
		outs := transformOne(t, e, fixture(t, "downstream-xraylab-put-capture.json", cloudevent.Options{Envelope: envelope}))
		if len(outs) != 1 || outs[0].Subject != "xray.images.xraylab-0001" {
			t.Fatalf("outputs %+v", outs)
		}
		name, bucket, key := xrayConsumer(t, outs[0].Event)
		if !strings.Contains(name, "ObjectCreated") || bucket != "xraylab-0001" || key != "demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg" {
			t.Errorf("envelope %v: consumer read %q %q %q", envelope, name, bucket, key)
		}
	}
	for name, why := range map[string]string{
		"reef-put-capture.json":       "not an image",
		"pacific-16.2.15/delete.json": "not a creation",
	} {
		if outs := transformOne(t, e, fixture(t, name, cloudevent.Options{})); len(outs) != 0 {
			t.Errorf("%s published (%s)", name, why)
		}
	}
	processed := fixture(t, "downstream-xraylab-put-capture.json", cloudevent.Options{})
	processed.SetExtension("bucket", "xraylab-0001-processed")
	if outs := transformOne(t, e, processed); len(outs) != 0 {
		t.Error("the service's own output bucket was published")
	}
}

// The X-ray pipeline with anonymization in front: a directory chain.
func TestSamplesChainAnonymizeThenXray(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"anonymize.lua", "xray.lua"} {
		src, err := readScripts(filepath.Join("..", "..", "samples", "lua", name))
		if err != nil {
			t.Fatal(err)
		}
		writeScript(t, dir, string(rune('1'+i))+"-"+name, string(src[0].src))
	}
	e, err := New(context.Background(), dir, WithReload(0), WithTimeout(testTimeout), WithHMACKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	outs := transformOne(t, e, fixture(t, "downstream-xraylab-put-capture.json", cloudevent.Options{}))
	if len(outs) != 1 {
		t.Fatalf("outputs %+v", outs)
	}
	if _, _, key := xrayConsumer(t, outs[0].Event); key != "demo_XXX_"+keyedHex("6580")[:12]+"_XXXX-XX-XX_2017-04-27.jpeg" {
		t.Errorf("key %q", key)
	}
}

func TestSampleRGWCompat(t *testing.T) {
	e := sample(t, "rgw-compat.lua")
	for _, name := range allFixtures(t) {
		in := fixture(t, name, cloudevent.Options{})
		outs := transformOne(t, e, in)
		if len(outs) != 1 || outs[0].Event != nil || outs[0].Subject != "rgw.notifications" {
			t.Fatalf("%s: outputs %+v", name, outs)
		}
		var env struct {
			Records []map[string]any
		}
		if err := json.Unmarshal(outs[0].Raw, &env); err != nil || len(env.Records) != 1 {
			t.Fatalf("%s: payload %s: %v", name, outs[0].Raw, err)
		}
		got, want := env.Records[0], record(t, in)
		for _, p := range [][]string{
			{"s3", "bucket", "name"}, {"s3", "object", "key"}, {"s3", "object", "size"},
			{"userIdentity", "principalId"}, {"responseElements", "x-amz-request-id"}, {"awsRegion"},
		} {
			if g, w := path(got, p...), path(want, p...); fmt.Sprint(g) != fmt.Sprint(w) { // size may come as a string
				t.Errorf("%s: %v = %v, want %v", name, p, g, w)
			}
		}
		wantName := strings.TrimPrefix(path(want, "eventName").(string), "s3:")
		if wantName == "ObjectRemoved:DeleteMarkerCreated" {
			wantName = "ObjectRemoved:Delete" // RGW's op is delete_obj for both
		}
		if got["eventName"] != wantName {
			t.Errorf("%s: eventName %v, want %s", name, got["eventName"], wantName)
		}
	}
}

func TestSampleUploads(t *testing.T) {
	ctx := context.Background()
	tbl := NewMemoryTable()
	e := sample(t, "uploads.lua", WithTable(tbl))
	put := func(key string) *event.Event {
		ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		if key != "" {
			ev.SetExtension("objectkey", key)
		}
		return ev
	}
	first := put("")
	bucket, key := first.Extensions()["bucket"].(string), first.Extensions()["objectkey"].(string)
	del := fixture(t, "pacific-16.2.15/delete.json", cloudevent.Options{})
	del.SetExtension("bucket", bucket)
	del.SetExtension("objectkey", key)
	long := strings.Repeat("dir/", 250) + "file" // S3 keys reach 1 KB
	for i, step := range []struct {
		in                  *event.Event
		route               string
		uploads, keyUploads int32 // 0: not set
	}{
		{first, "first", 1, 1},
		{put(""), "again", 2, 2},
		{del, "removed", 0, 0},
		{put(""), "first", 3, 1},
		{put("other key"), "first", 4, 1},
		{put(long), "first", 5, 1},
		{put(long), "again", 6, 2},
	} {
		outs := transformOne(t, e, step.in)
		ext := one(t, outs).Extensions()
		if want := "uploads." + bucket + "." + step.route; outs[0].Subject != want {
			t.Errorf("step %d: subject %q, want %q", i, outs[0].Subject, want)
		}
		if step.uploads != 0 && (ext["uploads"] != step.uploads || ext["keyuploads"] != step.keyUploads) {
			t.Errorf("step %d: uploads %v, key uploads %v; want %d, %d", i, ext["uploads"], ext["keyuploads"], step.uploads, step.keyUploads)
		}
	}
	// A full table routes new keys apart instead of failing them.
	for i := 0; ; i++ {
		if err := tbl.Set(ctx, fmt.Sprint("filler", i), true); errors.Is(err, ErrTableFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	outs := transformOne(t, e, put("yet another key"))
	if one(t, outs); outs[0].Subject != "uploads."+bucket+".untracked" {
		t.Errorf("new key in a full table: subject %q", outs[0].Subject)
	}
}
