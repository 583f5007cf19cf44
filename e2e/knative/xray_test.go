package knativee2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestServingXrayPush: the xray-push overlay end to end. The Service is
// cluster-local; a real RGW persistent topic pushes to it with Basic
// credentials in its push-endpoint; the image uploads arrive once each on
// xray.images.<bucket> in the XRAY stream with the RGW envelope as data,
// the rest is dropped by xray.lua; a POST without credentials is refused.
func TestServingXrayPush(t *testing.T) {
	l := needLab(t)
	local := l.env["KNATIVE_LAB_INGRESS_LOCAL"]
	if local == "" {
		t.Fatal("lab.env has no KNATIVE_LAB_INGRESS_LOCAL: no way to reach a cluster-local Service from the host")
	}
	localURL, err := url.Parse(local)
	if err != nil || (localURL.Hostname() != "127.0.0.1" && localURL.Hostname() != l.hostIP) {
		t.Fatalf("KNATIVE_LAB_INGRESS_LOCAL %q: want http://127.0.0.1:PORT or the lab bridge's address (%v)", local, err)
	}
	cephReady := make(chan struct{})
	go func() { cephOnce.Do(func() { theCeph, cephErr = startCeph() }); close(cephReady) }()
	ns := l.namespace(t, "xray")
	nl := l.startNATS(t)
	pass := randHex(10)
	secret := nl.secret()
	secret["AUTH_PASSWORD"] = pass
	l.apply(t, ns, build{base: "knative/overlays/xray-push", secret: secret})
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	if want := "rgw-nats." + ns + ".svc.cluster.local"; svc.host != want {
		t.Errorf("URL host %s, want %s (cluster-local)", svc.host, want)
	}
	nc := nl.conn(t)

	// Not reachable through the public ingress, and not without credentials.
	c := newClient(2, 2*time.Minute)
	body := rgwBody("xraylab-0001", "nocreds.jpeg", "ObjectCreated:Put", "nocreds-"+randHex(4))
	pub := &klab{ingress: l.ingress}
	if code, _, err := pub.post(context.Background(), c, svc.host, body, nil); err == nil && code/100 == 2 {
		t.Errorf("the public ingress accepted a POST for a cluster-local Service: %d", code)
	}
	loc := &klab{ingress: localURL}
	if code, answer, err := loc.post(context.Background(), c, svc.host, body, nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("POST without credentials: %d %q %v, want 401", code, answer, err)
	}

	<-cephReady
	if cephErr != nil {
		t.Fatalf("Pacific Ceph lab: %v", cephErr)
	}
	cph := theCeph
	fwd := l.forwarder(t, localURL, svc.host)
	bucket := "xraylab-0001"
	cph.persistentTopic(t, "ke2e-xray-"+randHex(3), "http://rgw:"+pass+"@"+fwd+"/", bucket)
	keys := []string{"scan_Doe_123_19700101_20260101.jpeg", "scan_Roe_456_19800202_20260101.png", "notes.txt", "scan_Poe_789.JPG"}
	for _, k := range keys {
		cph.put(t, bucket, k)
	}
	images := map[string]bool{keys[0]: true, keys[1]: true, keys[3]: true}
	var got []published
	start := time.Now()
	waitUntil(firstPersistent+time.Minute, time.Second, func() bool {
		got = readStream(t, nc, "XRAY", 0, 0)
		return len(got) >= len(images)
	})
	t.Logf("%d image uploads reached XRAY within %s", len(got), time.Since(start).Round(time.Second))
	time.Sleep(5 * time.Second)
	got = readStream(t, nc, "XRAY", 0, 0)
	seen := map[string]int{}
	for _, p := range got {
		if p.Subject != "xray.images.xraylab-0001" {
			t.Errorf("subject %s", p.Subject)
		}
		var data struct {
			Records []struct {
				EventName string
				S3        struct{ Object struct{ Key string } }
			}
		}
		raw, _ := json.Marshal(p.Ext["data"])
		if err := json.Unmarshal(raw, &data); err != nil || len(data.Records) != 1 {
			t.Errorf("data is not an RGW envelope of one record: %s", raw)
			continue
		}
		seen[data.Records[0].S3.Object.Key]++
	}
	for k := range images {
		if seen[k] != 1 {
			t.Errorf("%s published %d times, want once", k, seen[k])
		}
	}
	if len(seen) != len(images) {
		t.Errorf("published: %v, want only the images %v", seen, images)
	}
	t.Logf("RGW with Basic credentials -> cluster-local rgw-nats -> XRAY: %s", fmt.Sprint(seen))
}
