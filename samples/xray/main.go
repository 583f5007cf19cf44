// Command xray is the downstream half of the X-ray pipeline, as a sample: a
// stand-in for the risk-assessment service that consumes what rgw-nats
// publishes on xray.images.<bucket>. It decodes each message as a CloudEvent
// (either NATS binding mode), reads data.Records[0] the way the real service
// does (eventName, s3.bucket.name, s3.object.key), keeps only ObjectCreated
// events and logs what it would score: download the object, score it, write
// the annotated copy to <bucket>-processed.
//
// Core NATS: replicas share the work through a queue group. JetStream (set
// XRAY_STREAM): replicas share a durable pull consumer, so uploads made while
// no scorer runs are scored when one starts, and a message is acknowledged
// only after it was handled.
//
// It is an example, not part of the service: it uses the service's decoders
// (adapter/natsout, adapter/rgw) and nothing else of this repository.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// Config is read from the environment.
type Config struct {
	NATSURL      string        `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server URL(s), comma separated"`
	NATSCreds    string        `envconfig:"NATS_CREDS" desc:"path of a NATS .creds file"`
	NATSUser     string        `envconfig:"NATS_USER" desc:"NATS user name"`
	NATSPassword string        `envconfig:"NATS_PASSWORD" desc:"NATS password"`
	Subject      string        `envconfig:"XRAY_SUBJECT" default:"xray.images.>" desc:"subject(s) rgw-nats publishes the X-ray uploads on"`
	Queue        string        `envconfig:"XRAY_QUEUE" default:"xray-scoring" desc:"queue group shared by the replicas (core NATS)"`
	Stream       string        `envconfig:"XRAY_STREAM" desc:"JetStream stream holding the subjects; set it to consume durably"`
	Durable      string        `envconfig:"XRAY_DURABLE" default:"xray-scoring" desc:"durable consumer name shared by the replicas (JetStream)"`
	AckWait      time.Duration `envconfig:"XRAY_ACK_WAIT" default:"2m" desc:"how long scoring one image may take before JetStream redelivers it"`
}

// Verdict is what the consumer decided about one message.
type Verdict struct {
	Score     bool   // an image upload to score
	Reason    string // why not, when Score is false
	ID        string // CloudEvent id
	Subject   string // NATS subject
	EventName string // data.Records[0].eventName
	Bucket    string // data.Records[0].s3.bucket.name
	Key       string // data.Records[0].s3.object.key
}

// errPoison marks a message that can never be handled (not a CloudEvent, no
// RGW record): JetStream must not redeliver it.
var errPoison = errors.New("unusable message")

// Judge decides about one message. It never fails on the content of a valid
// event; an error means the message itself is unusable.
func Judge(msg *nats.Msg) (Verdict, error) {
	v := Verdict{Subject: msg.Subject}
	ev, err := binding.Decode(msg)
	if err != nil {
		return v, fmt.Errorf("%w: %w", errPoison, err)
	}
	v.ID = ev.ID()
	recs, err := rgw.Decode(ev.Data())
	if err != nil {
		// The service reads data.Records[0]: rgw-nats must run with
		// CE_DATA=envelope (or xray.lua, which wraps the record).
		return v, fmt.Errorf("%w: event %s: data is not {\"Records\":[...]}: %w", errPoison, v.ID, err)
	}
	rec := recs[0]
	v.EventName, v.Bucket, v.Key = rec.EventName, rec.S3.Bucket.Name, rec.S3.Object.Key
	switch {
	case !strings.Contains(v.EventName, "ObjectCreated"):
		v.Reason = "not an ObjectCreated event"
	case v.Key == "":
		v.Reason = "no object key"
	default:
		v.Score = true
	}
	return v, nil
}

// Consumer receives messages and hands each verdict to Handle.
type Consumer struct {
	Config Config
	Log    *slog.Logger
	// Handle is called once per message, from one goroutine at a time per
	// consumer; JetStream messages are acknowledged after it returns nil.
	Handle func(context.Context, Verdict) error
}

// logVerdict is the default Handle: what the real service would do.
func (c *Consumer) logVerdict(_ context.Context, v Verdict) error {
	if !v.Score {
		c.Log.Debug("skipped", "id", v.ID, "event", v.EventName, "reason", v.Reason)
		return nil
	}
	c.Log.Info("would score", "id", v.ID, "bucket", v.Bucket, "key", v.Key,
		"download", v.Bucket+"/"+v.Key, "annotated_copy", v.Bucket+"-processed/"+v.Key)
	return nil
}

// Run consumes until ctx ends. ready, when not nil, is closed once the
// subscription is in place.
func (c *Consumer) Run(ctx context.Context, nc *nats.Conn, ready chan<- struct{}) error {
	if c.Handle == nil {
		c.Handle = c.logVerdict
	}
	if c.Config.Stream != "" {
		return c.runJetStream(ctx, nc, ready)
	}
	msgs := make(chan *nats.Msg, 256)
	sub, err := nc.ChanQueueSubscribe(c.Config.Subject, c.Config.Queue, msgs)
	if err != nil {
		return fmt.Errorf("subscribe %q (queue %q): %w", c.Config.Subject, c.Config.Queue, err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	c.Log.Info("consuming", "subject", c.Config.Subject, "queue", c.Config.Queue)
	if ready != nil {
		close(ready)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			c.one(ctx, m)
		}
	}
}

func (c *Consumer) runJetStream(ctx context.Context, nc *nats.Conn, ready chan<- struct{}) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Config.Stream, jetstream.ConsumerConfig{
		Durable:       c.Config.Durable,
		FilterSubject: c.Config.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.Config.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("durable consumer %q on stream %q: %w", c.Config.Durable, c.Config.Stream, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return err
	}
	defer iter.Stop()
	c.Log.Info("consuming", "stream", c.Config.Stream, "durable", c.Config.Durable, "subject", c.Config.Subject)
	if ready != nil {
		close(ready)
	}
	go func() {
		<-ctx.Done()
		iter.Stop() // unblocks Next
	}()
	for {
		m, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		err = c.one(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		switch {
		case err == nil:
			err = m.Ack()
		case errors.Is(err, errPoison):
			err = m.Term() // redelivering it would fail the same way
		default:
			err = m.Nak() // scoring failed: let JetStream redeliver it
		}
		if err != nil {
			c.Log.Warn("acknowledging", "subject", m.Subject(), "error", err)
		}
	}
}

// one handles a message and logs a failure in one line.
func (c *Consumer) one(ctx context.Context, m *nats.Msg) error {
	v, err := Judge(m)
	if err == nil {
		err = c.Handle(ctx, v)
	}
	if err != nil {
		c.Log.Warn("message not handled", "subject", m.Subject, "id", v.ID, "error", err)
	}
	return err
}

// processEnv reads c from the environment.
func processEnv(c *Config) error { return envconfig.Process("", c) }

func main() {
	var cfg Config
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "Usage: xray (configured by environment variables)")
		envconfig.Usage("", &cfg)
		os.Exit(2)
	}
	if err := processEnv(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "xray:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	opts := []nats.Option{nats.Name("xray-scoring"), nats.MaxReconnects(-1)}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xray: NATS:", err)
		os.Exit(1)
	}
	defer nc.Drain()
	c := &Consumer{Config: cfg, Log: log}
	if err := c.Run(ctx, nc, nil); err != nil {
		fmt.Fprintln(os.Stderr, "xray:", err)
		os.Exit(1)
	}
}
