package knativee2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// natsLab is a real nats-server with JetStream on the lab's host address,
// where the pods reach it; the test can stop it and start it again on the
// same port with the same store (NATS outages).
type natsLab struct {
	t          *testing.T
	host       string
	port       int
	store      string
	user, pass string
	mu         sync.Mutex
	srv        *server.Server
}

func (l *klab) startNATS(t *testing.T) *natsLab {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(l.hostIP, "0"))
	if err != nil {
		t.Fatalf("listen on the lab's host address %s: %v", l.hostIP, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &natsLab{t: t, host: l.hostIP, port: port, store: t.TempDir(), user: "rgw-nats", pass: randHex(12)}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsLab) start() {
	n.t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Host = n.host
	opts.Port = n.port
	opts.JetStream = true
	opts.StoreDir = n.store
	opts.Username, opts.Password = n.user, n.pass
	opts.NoLog, opts.NoSigs = true, true
	n.mu.Lock()
	n.srv = natsserver.RunServer(&opts)
	n.mu.Unlock()
}

func (n *natsLab) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsLab) url() string { return fmt.Sprintf("nats://%s:%d", n.host, n.port) }

// secret is what the Secret rgw-nats-nats must hold to reach this server.
func (n *natsLab) secret() map[string]string {
	return map[string]string{"NATS_URL": n.url(), "NATS_USER": n.user, "NATS_PASSWORD": n.pass}
}

// conn is the test's own connection, reconnecting across outages.
func (n *natsLab) conn(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.url(), nats.UserInfo(n.user, n.pass), nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// published is one message of a stream, as a CloudEvent.
type published struct {
	Subject string
	ID      string
	Ext     map[string]any // every attribute of the structured CloudEvent
}

// readStream returns every message of stream, waiting up to d for at
// least want of them (want 0: whatever is there).
func readStream(t *testing.T, nc *nats.Conn, stream string, want int, d time.Duration) []published {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	var count uint64
	waitUntil(d, 500*time.Millisecond, func() bool {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil {
			return false
		}
		count = info.State.Msgs
		return want == 0 || count >= uint64(want)
	})
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count = info.State.Msgs
	if count == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []published
	for uint64(len(out)) < count {
		batch, err := cons.Fetch(int(min(count-uint64(len(out)), 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			out = append(out, decodePublished(t, m.Subject(), m.Headers(), m.Data()))
		}
		if got == 0 {
			t.Fatalf("stream %s: read %d of %d messages", stream, len(out), count)
		}
	}
	return out
}

func decodePublished(t *testing.T, subject string, h nats.Header, data []byte) published {
	p := published{Subject: subject, ID: h.Get("Nats-Msg-Id"), Ext: map[string]any{}}
	if json.Unmarshal(data, &p.Ext) == nil {
		if id, ok := p.Ext["id"].(string); ok && p.ID == "" {
			p.ID = id
		}
	}
	if p.ID == "" {
		p.ID = h.Get("Ce-Id")
		for k, v := range h {
			if strings.HasPrefix(strings.ToLower(k), "ce-") && len(v) > 0 {
				p.Ext[strings.ToLower(k[3:])] = v[0]
			}
		}
	}
	if p.ID == "" {
		t.Errorf("message on %s without an event id: %.200s", subject, data)
	}
	return p
}

// exactlyOnce compares what a stream holds with the ids that were
// acknowledged: lost are acknowledged ids missing, dup ids held twice or
// more, extra ids nobody sent.
type tally struct{ sent, held, lost, dup, extra int }

func (c tally) String() string {
	return fmt.Sprintf("%d acknowledged, %d held, %d lost, %d duplicated, %d unexpected", c.sent, c.held, c.lost, c.dup, c.extra)
}

func exactlyOnce(acked map[string]bool, got []published) (tally, []string) {
	seen := map[string]int{}
	for _, p := range got {
		seen[p.ID]++
	}
	c := tally{sent: len(acked), held: len(got)}
	var bad []string
	for id := range acked {
		if seen[id] == 0 {
			c.lost++
			bad = append(bad, "lost "+id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			c.dup++
			bad = append(bad, fmt.Sprintf("%dx %s", n, id))
		}
		if !acked[id] {
			c.extra++
			bad = append(bad, "unexpected "+id)
		}
	}
	sort.Strings(bad)
	if len(bad) > 20 {
		bad = bad[:20]
	}
	return c, bad
}

// rgwRecord is the Pacific record the bodies are made from.
var rgwRecord = func() map[string]any {
	var env struct{ Records []map[string]any }
	if err := json.Unmarshal(events.Read("pacific-16.2.15/persistent-put.json"), &env); err != nil || len(env.Records) != 1 {
		panic(fmt.Sprintf("fixture: %v", err))
	}
	return env.Records[0]
}()

// rgwBody is a raw RGW notification (what a persistent topic POSTs) of one
// record; its CloudEvent id is eventID + ".persist-all" (the
// configurationId of the fixture).
func rgwBody(bucket, key, eventName, eventID string) []byte {
	b, _ := json.Marshal(rgwRecord)
	var rec map[string]any
	json.Unmarshal(b, &rec)
	rec["eventName"] = eventName
	rec["eventId"] = eventID
	s3 := rec["s3"].(map[string]any)
	s3["bucket"].(map[string]any)["name"] = bucket
	s3["object"].(map[string]any)["key"] = key
	out, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	return out
}

// ceID is the id rgw-nats gives the event of rgwBody.
func ceID(eventID string) string { return eventID + ".persist-all" }

// sender posts RGW-style: every body until it is answered 2xx, as a
// persistent topic does; it counts what it saw on the way.
type sender struct {
	l      *klab
	c      *http.Client
	host   string
	header http.Header

	mu       sync.Mutex
	answers  map[int]int // status -> count; 0 = transport error
	attempts int
}

func (l *klab) newSender(host string, conns int) *sender {
	return &sender{l: l, c: newClient(conns, 90*time.Second), host: host, answers: map[int]int{}}
}

// deliver sends body until 2xx or until ctx ends; it reports whether the
// body was acknowledged.
func (s *sender) deliver(ctx context.Context, body []byte) bool {
	for {
		code, _, err := s.l.post(ctx, s.c, s.host, body, s.header)
		s.mu.Lock()
		s.attempts++
		if err != nil {
			code = 0
		}
		s.answers[code]++
		s.mu.Unlock()
		if err == nil && code/100 == 2 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *sender) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := make([]int, 0, len(s.answers))
	for c := range s.answers {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests:", s.attempts)
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "error"
		}
		fmt.Fprintf(&b, " %s x%d", name, s.answers[c])
	}
	return b.String()
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
