package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestTentacleRequests replays each Tentacle 20.2.4 capture with the headers
// RGW sent (cloudevents=true ones carry Ce-* headers whose Ce-Id one
// request's records share) through a served adapter: each record becomes
// one event with its own id, and the POST form upload whose eventTime is
// "0.000000" gets the time of its eventId.
func TestTentacleRequests(t *testing.T) {
	cfg := testConfig(t, map[string]string{
		"NATS_URL": "", "NATS_EMBEDDED_LISTEN": "127.0.0.1:0", "NATS_STORE_DIR": t.TempDir(),
	})
	ep, _ := startServe(t, cfg)
	nc, err := nats.Connect(ep.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("rgw.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	want := map[string]string{ // fixture -> id, time of the published CloudEvent
		"cloudevents-put":              "1796160338.161069.8dd5067d1c62a18c414da9ef1f1dbde6.ce-created 2026-12-01T21:25:38.159631Z",
		"ce-persistent-delete-multi-1": "1796161343.464019.7b48666b13c02ffd7122df4275adc002.cep-all 2026-12-01T21:42:23.464014Z",
		"ce-persistent-delete-multi-2": "1796161343.464716.7b48666b13c02ffd7122df4275adc002.cep-all 2026-12-01T21:42:23.464713Z",
		"multipart-upload":             "1796160257.433362.88fc978485924ccd87ceb19c90195b35-2.main-created 2026-12-01T21:24:17.427058Z",
		"post-object-form":             "1796160285.477840.8dd5067d1c62a18c414da9ef1f1dbde6.post-created 2026-12-01T21:24:45.47784Z",
		"versioned-delete-marker":      "1796160290.637397.8dd5067d1c62a18c414da9ef1f1dbde6.ver-all 2026-12-01T21:24:50.63739Z",
	}
	dir := "../../samples/events/tentacle-20.2.4"
	for name, w := range want {
		body, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest("POST", "http://"+ep.HTTP+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		readHeaders(t, filepath.Join(dir, name+".headers.txt"), req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %s", name, resp.Status)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: nothing published: %v", name, err)
		}
		var ev struct{ ID, Time string }
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := ev.ID + " " + ev.Time; got != w {
			t.Errorf("%s: published %s, want %s", name, got, w)
		}
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("an extra message: %s", m.Data)
	}
}

// readHeaders adds the headers of a capture (request line, Host and
// Content-Length left out: the client sets them) to h.
func readHeaders(t *testing.T, path string, h http.Header) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // POST /path HTTP/1.1
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok || k == "Host" || k == "Content-Length" {
			continue
		}
		h.Add(k, v)
	}
}
