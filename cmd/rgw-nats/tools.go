package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/service"
	"github.com/rgw-nats/rgw-nats/function"
)

// send POSTs each file to a running adapter, the way RGW or a Knative
// delivery would, and prints the answer.
func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	url, token := targetFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: rgw-nats send [flags] FILE...\n\nA file holding {\"Records\":[...]} goes as RGW sends it; a CloudEvent (JSON with\n\"specversion\") goes in structured mode; a JSON array of them in batch mode.")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("%w: send needs at least one FILE", errUsage)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	failed := 0
	for _, name := range fs.Args() {
		body, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		h := http.Header{"Content-Type": {contentTypeOf(body)}}
		ans, err := post(ctx, client, *url, *token, h, body)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stdout, "%s: %s\n", name, ans)
		if !ans.ok() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d not accepted", failed, fs.NArg())
	}
	return nil
}

// targetFlags are the flags naming the adapter a command POSTs to; their
// defaults come from the same configuration serve reads (PORT, AUTH_TOKEN).
func targetFlags(fs *flag.FlagSet) (url, token *string) {
	cfg, err := function.LoadConfig()
	if err != nil {
		cfg = function.Config{Port: "8080"} // the command reports the bad variable when it loads it again
	}
	url = fs.String("url", "http://localhost:"+cfg.Port+"/", "adapter URL (RGW's push-endpoint; user:password@ for Basic auth)")
	token = fs.String("token", cfg.AuthToken, "bearer token, if the adapter requires one")
	return url, token
}

// answer is what the adapter said to one POST.
type answer struct {
	code    int
	status  string
	body    string // the first few KiB, trimmed
	outcome string // the Rgwnats-Outcome header: what became of the events
}

func (a answer) ok() bool { return a.code/100 == 2 }

func (a answer) String() string {
	s := a.status
	if a.outcome != "" {
		s += " [" + a.outcome + "]"
	}
	if a.body != "" {
		s += " " + a.body
	}
	return s
}

// post sends one body with the given headers, the way a sender would.
func post(ctx context.Context, client *http.Client, url, token string, h http.Header, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	maps.Copy(req.Header, h)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return answer{code: resp.StatusCode, status: resp.Status, body: strings.TrimSpace(string(msg)),
		outcome: resp.Header.Get(adapter.HeaderOutcome)}, nil
}

// contentTypeOf picks the content type a file is meant to be sent with.
func contentTypeOf(body []byte) string {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return "application/cloudevents-batch+json"
	}
	var probe struct {
		SpecVersion string `json:"specversion"`
	}
	if json.Unmarshal(trimmed, &probe) == nil && probe.SpecVersion != "" {
		return "application/cloudevents+json"
	}
	return "application/json"
}

// connectNATS opens a connection with the NATS_* settings, for a person at a
// terminal: connection changes (disconnects, reconnects) are logged on
// stderr, and an unreachable server is an error within 5 seconds instead of
// a silent wait.
func connectNATS(ctx context.Context, cfg *function.Config, name string, stderr io.Writer) (*natsout.Publisher, error) {
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSEmbeddedListen
	}
	s := cfg.Settings
	s.NATSURL = url
	pub, err := service.Connect(ctx, s, name, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", natsout.RedactURL(url), err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pub.WaitReady(waitCtx); err != nil {
		pub.Close(context.Background())
		return nil, fmt.Errorf("cannot reach NATS at %s (is the adapter running? set NATS_URL): %w", natsout.RedactURL(url), err)
	}
	return pub, nil
}

// received is one message as tail and replay see it; Seq and Time are set
// for messages read from a stream.
type received struct {
	*nats.Msg
	Seq     uint64
	Time    time.Time
	Pending uint64 // messages of the consumer still to come after this one
}

// position is where reading a stream starts: --seq or --since, or the
// beginning.
type position struct {
	seq   uint64
	since string
}

func (p *position) flags(fs *flag.FlagSet) {
	fs.Uint64Var(&p.seq, "seq", 0, "with --stream: start at this stream sequence number")
	fs.StringVar(&p.since, "since", "", "with --stream: start at this age (10m, 2h) or time (RFC 3339)")
}

// consumerConfig turns the position into an ordered consumer's start.
func (p *position) consumerConfig(filter string) (jetstream.OrderedConsumerConfig, error) {
	c := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if filter != "" && filter != ">" {
		c.FilterSubjects = []string{filter}
	}
	switch {
	case p.seq > 0 && p.since != "":
		return c, fmt.Errorf("%w: give --seq or --since, not both", errUsage)
	case p.seq > 0:
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, p.seq
	case p.since != "":
		t, err := parseSince(p.since, time.Now())
		if err != nil {
			return c, fmt.Errorf("%w: --since: %w", errUsage, err)
		}
		c.DeliverPolicy, c.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return c, nil
}

// parseSince reads an age ("10m") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("negative age %s", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (10m) nor an RFC 3339 time", s)
	}
	return t, nil
}

// openStream creates an ordered consumer on a stream for a command (tail,
// replay): nothing acknowledged, resumed where it was after a reconnect,
// named after the command (rgw-nats-tail-<random>_1, as `nats consumer ls`
// shows it). The returned close deletes it: a command leaves nothing on the
// server, and one that is killed leaves it for only consumerIdle.
func openStream(ctx context.Context, conn *nats.Conn, stream, command string, cc jetstream.OrderedConsumerConfig) (jetstream.Consumer, func(), error) {
	js, err := jetstream.New(conn)
	if err != nil {
		return nil, nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	cc.NamePrefix = "rgw-nats-" + command + "-" + hex.EncodeToString(b[:])
	cc.InactiveThreshold = consumerIdle
	cons, err := js.OrderedConsumer(ctx, stream, cc)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, fmt.Errorf("stream %q not found", stream)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("stream %q: %w", stream, err)
	}
	closeConsumer := func() {
		info := cons.CachedInfo()
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, stream, info.Name)
	}
	return cons, closeConsumer, nil
}

// consumerIdle is how long the server keeps the consumer of a command that
// could not delete it (killed, or NATS away at exit).
const consumerIdle = 30 * time.Second

// consume hands each message of the consumer to out until done is closed
// or the returned ConsumeContext is stopped.
func consume(cons jetstream.Consumer, out chan<- received, done <-chan struct{}) (jetstream.ConsumeContext, error) {
	return cons.Consume(func(m jetstream.Msg) {
		r := received{Msg: &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}}
		if meta, err := m.Metadata(); err == nil {
			r.Seq, r.Time, r.Pending = meta.Sequence.Stream, meta.Timestamp, meta.NumPending
		}
		select {
		case out <- r:
		case <-done:
		}
	})
}

// tail subscribes to a subject, or reads a stream, and prints every message
// readably: CloudEvents by their attributes, dead letters by their reason.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	raw := fs.Bool("raw", false, "print each message's headers and payload as received")
	count := fs.Int("n", 0, "exit after this many messages (0: run until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit with an error if no message arrives for this long (0: wait forever)")
	stream := fs.String("stream", "", "read this JetStream stream from --seq or --since (default: all it holds), then follow it")
	var pos position
	pos.flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: rgw-nats tail [flags] [SUBJECT]

Connects with the NATS_* settings (NATS_URL empty: the embedded server's default nats://127.0.0.1:4222).
SUBJECT defaults to what NATS_SUBJECT and DEAD_LETTER_SUBJECT can produce (rgw.> and
rgwnats.deadletter.> by default); with --stream, to everything in the stream.
NATS's own subjects (_INBOX.*, $JS.*, ...) are left out unless SUBJECT names them.
Connection losses and reconnects are logged on stderr.

Examples:
  rgw-nats tail                                  # what the adapter publishes from now on
  rgw-nats tail --stream RGW --since 10m         # the last 10 minutes of stream RGW, then follow
  rgw-nats tail --stream RGW --seq 1200 -n 10    # ten messages from sequence 1200`)
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return fmt.Errorf("%w: tail takes one SUBJECT", errUsage)
	}
	if *stream == "" && (pos.seq > 0 || pos.since != "") {
		return fmt.Errorf("%w: --seq and --since need --stream", errUsage)
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		return err
	}
	subj := fs.Arg(0)
	var subjects []string // what a plain tail subscribes to
	switch {
	case subj != "":
		subjects = []string{subj}
	case *stream == "":
		// What the adapter publishes: its events and its dead letters.
		subjects = []string{cfg.NATSSubject.StreamSubjects()}
		if cfg.DeadLetter {
			subjects = append(subjects, cfg.DeadLetterSubject.StreamSubjects())
		}
	}
	var cc jetstream.OrderedConsumerConfig
	if *stream != "" {
		if cc, err = pos.consumerConfig(subj); err != nil {
			return err
		}
	}
	pub, err := connectNATS(ctx, &cfg, "rgw-nats tail", stderr)
	if err != nil {
		return err
	}
	defer pub.Close(context.Background())
	conn := pub.Conn()

	msgs := make(chan received, 64)
	done := make(chan struct{})
	defer close(done)
	if *stream != "" {
		cons, closeConsumer, err := openStream(ctx, conn, *stream, "tail", cc)
		if err != nil {
			return err
		}
		defer closeConsumer()
		reading, err := consume(cons, msgs, done)
		if err != nil {
			return fmt.Errorf("stream %q: %w", *stream, err)
		}
		defer reading.Stop()
		what := "everything"
		if subj != "" {
			what = fmt.Sprintf("%q", subj)
		}
		fmt.Fprintf(stderr, "tailing %s in stream %s on %s\n", what, *stream, conn.ConnectedUrlRedacted())
	} else {
		for _, subj := range subjects {
			sub, err := conn.Subscribe(subj, func(m *nats.Msg) {
				select {
				case msgs <- received{Msg: m}:
				case <-done:
				}
			})
			if err != nil {
				return fmt.Errorf("subscribe %q: %w", subj, err)
			}
			defer sub.Unsubscribe()
		}
		if err := conn.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "tailing %s on %s\n", quoteAll(subjects), conn.ConnectedUrlRedacted())
	}

	var idle <-chan time.Time
	for n := 0; *count == 0 || n < *count; {
		if *timeout > 0 {
			idle = time.After(*timeout)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-idle:
			return fmt.Errorf("no message for %s", *timeout)
		case m := <-msgs:
			if systemSubject(m.Subject) && !systemSubject(subj) {
				continue
			}
			n++
			if *raw {
				printRaw(stdout, m)
			} else {
				printReceived(stdout, m)
			}
		}
	}
	return nil
}

func quoteAll(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, " and ")
}

// systemSubject reports whether NATS itself uses a subject: request replies
// (_INBOX.*, where JetStream acks go) and the $-prefixed APIs and events
// ($JS.*, $KV.*, $SYS.*). A wildcard tail ('>') would show them otherwise.
func systemSubject(s string) bool {
	return strings.HasPrefix(s, "_INBOX.") || strings.HasPrefix(s, "$")
}

// headerLine starts each message: its subject and, from a stream, its
// sequence number and when it was stored.
func headerLine(w io.Writer, m received, note string) {
	fmt.Fprintf(w, "--- %s", m.Subject)
	if m.Seq > 0 {
		fmt.Fprintf(w, "  #%d %s", m.Seq, m.Time.UTC().Format(time.RFC3339Nano))
	}
	if note != "" {
		fmt.Fprintf(w, "  (%s)", note)
	}
	fmt.Fprintln(w)
}

func printRaw(w io.Writer, m received) {
	headerLine(w, m, "")
	for _, k := range slices.Sorted(maps.Keys(m.Header)) {
		for _, v := range m.Header[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "\n%s\n", m.Data)
}

func printReceived(w io.Writer, m received) {
	if isDeadLetter(m.Msg) {
		printDeadLetter(w, m)
		return
	}
	ev, err := binding.Decode(m.Msg)
	if err != nil {
		headerLine(w, m, "not a CloudEvent")
		fmt.Fprintf(w, "  error:   %s\n", oneLine(err.Error()))
		printBody(w, "payload", m.Data)
		return
	}
	headerLine(w, m, "")
	fmt.Fprintf(w, "  id:      %s\n  type:    %s\n  source:  %s\n", ev.ID(), ev.Type(), ev.Source())
	if s := ev.Subject(); s != "" {
		fmt.Fprintf(w, "  subject: %s\n", s)
	}
	if t := ev.Time(); !t.IsZero() {
		fmt.Fprintf(w, "  time:    %s\n", t.Format(time.RFC3339Nano))
	}
	exts := ev.Extensions()
	for _, name := range slices.Sorted(maps.Keys(exts)) {
		fmt.Fprintf(w, "  %s: %v\n", name, exts[name])
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, ev.Data(), "  ", "  ") == nil {
		fmt.Fprintf(w, "  data:\n  %s\n", pretty.Bytes())
	} else if len(ev.Data()) > 0 {
		fmt.Fprintf(w, "  data (%s, %d bytes)\n", ev.DataContentType(), len(ev.Data()))
	}
}

// The headers of a dead letter (package adapter writes them). The payload is
// the original request body; headerHTTPPrefix marks the original request's
// own headers (ce-* of a binary CloudEvent), kept so a replay can send them
// again.
const (
	headerReason     = adapter.HeaderReason
	headerError      = adapter.HeaderError
	headerEventID    = adapter.HeaderEventID
	headerAttempts   = adapter.HeaderAttempts
	headerTruncated  = adapter.HeaderTruncated
	headerScript     = adapter.HeaderScript
	headerScriptLine = adapter.HeaderLine
	headerHTTPPrefix = adapter.HeaderHTTPPrefix
	headerDeadPrefix = "Rgwnats-"
)

func isDeadLetter(m *nats.Msg) bool { return header(m.Header, headerReason) != "" }

func header(h nats.Header, key string) string { return binding.HeaderFold(h, key) }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func printDeadLetter(w io.Writer, m received) {
	headerLine(w, m, "dead letter")
	fmt.Fprintf(w, "  reason:   %s\n", header(m.Header, headerReason))
	for _, f := range []struct{ label, key string }{
		{"error", headerError}, {"event id", headerEventID}, {"attempts", headerAttempts},
		{"script", headerScript}, {"line", headerScriptLine},
	} {
		if v := header(m.Header, f.key); v != "" {
			fmt.Fprintf(w, "  %-9s %s\n", f.label+":", v)
		}
	}
	known := []string{headerReason, headerError, headerEventID, headerAttempts, headerScript, headerScriptLine}
	var others, original []string
	for k := range m.Header {
		switch {
		case hasPrefixFold(k, headerHTTPPrefix):
			original = append(original, k)
		case hasPrefixFold(k, headerDeadPrefix) && !slices.ContainsFunc(known, func(s string) bool { return strings.EqualFold(s, k) }):
			others = append(others, k)
		}
	}
	slices.Sort(others)
	for _, k := range others {
		fmt.Fprintf(w, "  %s: %s\n", strings.ToLower(k[len(headerDeadPrefix):]), strings.Join(m.Header[k], ", "))
	}
	if ct := header(m.Header, "Content-Type"); ct != "" {
		fmt.Fprintf(w, "  content-type: %s\n", ct)
	}
	if len(original) > 0 {
		slices.Sort(original)
		fmt.Fprintln(w, "  original headers:")
		for _, k := range original {
			for _, v := range m.Header[k] {
				fmt.Fprintf(w, "    %s: %s\n", k[len(headerHTTPPrefix):], v)
			}
		}
	}
	printBody(w, "body", m.Data)
}

// printBody shows a payload: indented JSON when it is JSON, text when it is
// text, a size otherwise.
func printBody(w io.Writer, label string, data []byte) {
	var pretty bytes.Buffer
	switch {
	case len(data) == 0:
		fmt.Fprintf(w, "  %s: (empty)\n", label)
	case json.Indent(&pretty, data, "  ", "  ") == nil:
		fmt.Fprintf(w, "  %s:\n  %s\n", label, pretty.Bytes())
	case utf8.Valid(data):
		fmt.Fprintf(w, "  %s:\n  %s\n", label, strings.ReplaceAll(strings.TrimRight(string(data), "\n"), "\n", "\n  "))
	default:
		fmt.Fprintf(w, "  %s: %d bytes, not text\n", label, len(data))
	}
}

// oneLine keeps an error on its line: CloudEvents validation errors span
// several.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
