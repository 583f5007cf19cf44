package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
)

// send POSTs each file to a running adapter, the way RGW or a Knative
// delivery would, and prints the answer.
func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	url := fs.String("url", "http://localhost:"+port+"/", "adapter URL (RGW's push-endpoint; user:password@ for Basic auth)")
	token := fs.String("token", os.Getenv("AUTH_TOKEN"), "bearer token, if the adapter requires one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: rgw-nats send [flags] FILE...\n\nA file holding {\"Records\":[...]} goes as RGW sends it; a CloudEvent (JSON with\n\"specversion\") goes in structured mode; a JSON array of them in batch mode.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
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
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentTypeOf(body))
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(stdout, "%s: %s %s\n", name, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode/100 != 2 {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d not accepted", failed, fs.NArg())
	}
	return nil
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

// tail subscribes to a subject and prints every CloudEvent readably.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.Bool("raw", false, "print each message's headers and payload as received")
	count := fs.Int("n", 0, "exit after this many messages (0: run until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit with an error if no message arrives for this long (0: wait forever)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: rgw-nats tail [flags] [SUBJECT]\n\nConnects with the NATS_* settings (NATS_URL empty: the embedded server's default nats://127.0.0.1:4222).\nSUBJECT defaults to what NATS_SUBJECT can produce (rgw.> by default).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		return err
	}
	subj := fs.Arg(0)
	if subj == "" {
		subj = cfg.NATSSubject.StreamSubjects()
	}
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSEmbeddedListen
	}
	pub, err := natsout.Connect(ctx, natsout.Config{
		URL: url, Name: "rgw-nats tail", CredsFile: cfg.NATSCreds, NkeySeedFile: cfg.NATSNkey,
		User: cfg.NATSUser, Password: cfg.NATSPassword, Token: cfg.NATSToken,
		TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", url, err)
	}
	defer pub.Close(context.Background())
	// Connect keeps retrying in the background; a person wants to know now.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pub.WaitReady(waitCtx); err != nil {
		return fmt.Errorf("cannot reach NATS at %s (is the adapter running? set NATS_URL): %w", url, err)
	}
	conn := pub.Conn()
	msgs := make(chan *nats.Msg, 256)
	sub, err := conn.ChanSubscribe(subj, msgs)
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", subj, err)
	}
	defer sub.Unsubscribe()
	if err := conn.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "tailing %q on %s\n", subj, conn.ConnectedUrlRedacted())

	var idle <-chan time.Time
	for n := 0; *count == 0 || n < *count; n++ {
		if *timeout > 0 {
			idle = time.After(*timeout)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-idle:
			return fmt.Errorf("no message on %q for %s", subj, *timeout)
		case m := <-msgs:
			if *raw {
				printRaw(stdout, m)
			} else {
				printEvent(stdout, m)
			}
		}
	}
	return nil
}

func printRaw(w io.Writer, m *nats.Msg) {
	fmt.Fprintf(w, "--- %s\n", m.Subject)
	for k, vs := range m.Header {
		for _, v := range vs {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "\n%s\n", m.Data)
}

func printEvent(w io.Writer, m *nats.Msg) {
	ev, err := binding.Decode(m)
	if err != nil {
		fmt.Fprintf(w, "--- %s (not a CloudEvent: %v)\n%s\n", m.Subject, err, m.Data)
		return
	}
	fmt.Fprintf(w, "--- %s\n", m.Subject)
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
