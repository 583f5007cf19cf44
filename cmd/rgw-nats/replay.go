package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/function"
)

// replay reads the dead letters stored in a stream and POSTs each original
// request body to the adapter again, with its Content-Type and its saved
// headers. It is safe to run twice: the adapter de-duplicates by event id.
func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	stream := fs.String("stream", "", "JetStream stream holding the dead letters (required)")
	filter := fs.String("subject", "", "dead-letter subjects to read (default: what DEAD_LETTER_SUBJECT produces, rgwnats.deadletter.>)")
	count := fs.Int("n", 0, "replay at most this many (0: all)")
	dryRun := fs.Bool("dry-run", false, "print what would be sent, send nothing")
	url, token := targetFlags(fs)
	var pos position
	pos.flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: rgw-nats replay --stream NAME [flags]

Sends the dead letters stored in a stream back through the adapter, once the cause is
fixed (a script repaired, a limit raised): each one's original body is POSTed with its
Content-Type and original headers, and the adapter's answer is printed. Replay reads what
the stream held when it started and then stops; dead letters the replay itself causes
are left for the next run. Each POST carries Rgwnats-Replay: STREAM#SEQ, which lets the
adapter publish an event id it dead-lettered (a sender's resend of it is only a
duplicate). Running it twice is harmless: the adapter recognises the event ids it has
already published (within DEDUP_WINDOW; in JetStream mode the stream's duplicate window
too).

Examples:
  rgw-nats replay --stream RGW --since 1h                  # everything dead-lettered in the last hour
  rgw-nats replay --stream RGW --seq 4711 -n 1             # one dead letter
  rgw-nats replay --stream RGW --url http://user:pw@adapter:8080/`)
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if *stream == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: replay needs --stream and no arguments", errUsage)
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		return err
	}
	if *filter == "" {
		*filter = cfg.DeadLetterSubject.StreamSubjects()
	}
	cc, err := pos.consumerConfig(*filter)
	if err != nil {
		return err
	}
	pub, err := connectNATS(ctx, &cfg, "rgw-nats replay", stderr)
	if err != nil {
		return err
	}
	defer pub.Close(context.Background())

	msgs := make(chan received, 16)
	done := make(chan struct{})
	defer close(done)
	cons, closeConsumer, err := openStream(ctx, pub.Conn(), *stream, "replay", cc)
	if err != nil {
		return err
	}
	defer closeConsumer()
	// Replay what is there now: the consumer's pending count before it
	// delivers anything says whether there is anything, and the stream's
	// last sequence bounds the run, so that dead letters the replay itself
	// produces are not replayed in a loop.
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %q: %w", *stream, err)
	}
	if info.NumPending == 0 {
		fmt.Fprintf(stdout, "no dead letters on %q in stream %s\n", *filter, *stream)
		return nil
	}
	lastSeq, err := streamLastSeq(ctx, pub.Conn(), *stream)
	if err != nil {
		return err
	}
	consumer, err := consume(cons, msgs, done)
	if err != nil {
		return fmt.Errorf("stream %q: %w", *stream, err)
	}
	defer consumer.Stop()

	client := &http.Client{Timeout: 30 * time.Second}
	var sent, failed, skipped, truncated int
	var total outcomeSum
	for *count == 0 || sent < *count {
		var m received
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m = <-msgs:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("stream %s stopped delivering after %d dead letter(s)", *stream, sent)
		}
		if m.Seq > lastSeq {
			break
		}
		switch {
		case !isDeadLetter(m.Msg):
			skipped++
		case header(m.Header, headerTruncated) != "":
			// Only the first bytes of a body over MAX_BODY_BYTES were kept:
			// sending them would only be refused as bad input.
			truncated++
			fmt.Fprintf(stderr, "#%d: not sent: %s, only %s bytes were kept\n", m.Seq, header(m.Header, headerReason), header(m.Header, headerTruncated))
		default:
			sent++
			label := fmt.Sprintf("#%d", m.Seq)
			if id := header(m.Header, headerEventID); id != "" { // absent when the request did not decode
				label += " event " + id
			}
			label += " (" + header(m.Header, headerReason) + ")"
			h := replayHeader(m)
			h.Set(adapter.HeaderReplay, *stream+"#"+strconv.FormatUint(m.Seq, 10))
			if *dryRun {
				fmt.Fprintf(stdout, "%s: would POST %d bytes, %s\n", label, len(m.Data), h.Get("Content-Type"))
			} else {
				ans, err := post(ctx, client, *url, *token, h, m.Data)
				if err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
				fmt.Fprintf(stdout, "%s: %s\n", label, ans)
				if !ans.ok() {
					failed++
				}
				total.add(ans.outcome)
			}
		}
		if m.Pending == 0 || m.Seq >= lastSeq {
			break
		}
	}
	if sent > 0 && !*dryRun {
		// What became of the replayed events: those dead-lettered again
		// still wait for their fix (the adapter's log has the new error).
		fmt.Fprintf(stderr, "replayed %d dead letter(s): %s\n", sent, total)
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d message(s) that are not dead letters\n", skipped)
	}
	if truncated > 0 {
		fmt.Fprintf(stderr, "did not send %d truncated dead letter(s)\n", truncated)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d replayed dead letter(s) not accepted", failed, sent)
	}
	return nil
}

// streamLastSeq is the sequence number of the last message a stream holds.
func streamLastSeq(ctx context.Context, conn *nats.Conn, stream string) (uint64, error) {
	js, err := jetstream.New(conn)
	if err != nil {
		return 0, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %q: %w", stream, err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// replayHeader rebuilds the request headers of a dead letter: its
// Content-Type and the original headers saved as Rgwnats-Http-NAME.
// Credentials and framing are the replay's own, never restored.
func replayHeader(m received) http.Header {
	h := http.Header{}
	for k, vs := range m.Header {
		if !hasPrefixFold(k, headerHTTPPrefix) {
			continue
		}
		name := http.CanonicalHeaderKey(k[len(headerHTTPPrefix):])
		switch name {
		case "Authorization", "Content-Length", "Host", "Connection", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			h.Add(name, v)
		}
	}
	ct := header(m.Header, "Content-Type")
	if ct == "" {
		ct = contentTypeOf(m.Data)
	}
	h.Set("Content-Type", ct)
	return h
}

// outcomeSum adds up the Rgwnats-Outcome headers of several answers.
type outcomeSum struct {
	names  []string
	counts map[string]int
}

// add reads one header: "published=1, duplicate=0, ...".
func (s *outcomeSum) add(header string) {
	for kv := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			continue
		}
		if s.counts == nil {
			s.counts = map[string]int{}
		}
		if _, seen := s.counts[k]; !seen {
			s.names = append(s.names, k)
		}
		s.counts[k] += n
	}
}

func (s outcomeSum) String() string {
	if len(s.names) == 0 {
		return "no outcome reported"
	}
	parts := make([]string, len(s.names))
	for i, k := range s.names {
		parts[i] = k + "=" + strconv.Itoa(s.counts[k])
	}
	return strings.Join(parts, ", ")
}
