// Package natsout is the NATS egress of rgw-nats: a Publisher publishes
// encoded messages over one process-wide connection (core NATS with a
// flush, or JetStream with an ack) and tells the caller per message whether
// NATS really has it. New takes a connection the caller opened, as
// jetstream.New does; Connect opens one the way the service needs it
// (reconnecting forever, no reconnect buffer, every authentication and TLS
// option) and makes the Publisher on it. Encoding is package binding's job.
//
// It depends on nats.go, adapter/binding and adapter/subject only. It must
// not import net/http, nats-server, Lua, Knative, or the adapter pipeline
// and function packages.
package natsout

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
)

// ErrUnavailable is wrapped by every publish error after which NATS may not
// have the message: the connection is down, the flush or the JetStream ack
// did not come in time, no stream answered. Retrying later with the same
// message (and msg id) is the right reaction; the service answers 503.
var ErrUnavailable = errors.New("nats unavailable")

// ErrNoStream is wrapped when JetStream has no stream that captures a
// message's subject while the server is reachable and answers stream
// look-ups: a configuration error that every retry meets again (a script
// that publishes outside the stream's subjects). Its message names the
// subject and the stream expected.
var ErrNoStream = errors.New("no JetStream stream captures the subject")

// ErrRejected is binding.ErrRejected: a message that retrying cannot get
// published (too large, invalid subject).
var ErrRejected = binding.ErrRejected

// Mode selects how a publish is confirmed.
type Mode int

const (
	// Core publishes with core NATS and confirms with one flush round trip
	// per Publish call: the server has the messages, subscribers may not.
	Core Mode = iota
	// JetStream publishes with a Nats-Msg-Id and waits for the stream's ack.
	JetStream
)

func (m Mode) String() string {
	switch m {
	case Core:
		return "core"
	case JetStream:
		return "jetstream"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads "core" or "jetstream" (any case).
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "core", "":
		return Core, nil
	case "jetstream":
		return JetStream, nil
	}
	return Core, fmt.Errorf("NATS mode must be core or jetstream, not %q", s)
}

// UnmarshalText makes Mode a configuration value (NATS_MODE).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// MarshalText writes the name ParseMode reads.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// DefaultAckTimeout bounds a flush or a JetStream ack when Config.AckTimeout
// is zero.
const DefaultAckTimeout = 5 * time.Second

// Config describes the connection. The zero value connects to
// nats://127.0.0.1:4222 in core mode.
type Config struct {
	URL  string // one URL or a comma-separated list; empty means nats.DefaultURL
	Name string // connection name shown by the server; empty means "rgw-nats"

	// Authentication; set at most one of CredsFile, NkeySeedFile,
	// User/Password and Token.
	CredsFile    string // .creds file (JWT and nkey seed)
	NkeySeedFile string // nkey seed file
	User         string
	Password     string
	Token        string

	// TLS; any of them turns TLS on.
	TLSCA   string // PEM CAs that sign the server certificate
	TLSCert string // PEM client certificate, with TLSKey
	TLSKey  string

	Mode           Mode
	Stream         string   // JetStream stream checked or created at connect
	StreamSubjects []string // subjects of the stream when StreamCreate is set
	StreamCreate   bool     // create the stream, or add missing subjects to it
	// DuplicateWindow and Replicas of a created stream; zero: the server's
	// defaults (2 minutes, 1 replica). An existing stream keeps its own.
	DuplicateWindow time.Duration
	Replicas        int
	// MustCapture are subjects some stream must capture (the dead letter's):
	// in JetStream mode the Publisher is not ready while none does (Ready,
	// NotReady), and says so at start and after each reconnect; in core mode
	// each stream setup warns.
	MustCapture []string

	AckTimeout time.Duration // bound of a flush or ack; zero means DefaultAckTimeout
	Logger     *slog.Logger  // nil means slog.Default()
}

// Option changes how Connect works beyond what Config describes.
type Option func(*options)

type options struct {
	nats          []nats.Option
	reconnectWait time.Duration
}

// WithReconnectWait sets the pause between reconnect attempts (default
// 250ms, plus up to 100ms of jitter so a fleet does not reconnect in step).
func WithReconnectWait(d time.Duration) Option {
	return func(o *options) { o.reconnectWait = d }
}

func (c *Config) ackTimeout() time.Duration {
	if c.AckTimeout > 0 {
		return c.AckTimeout
	}
	return DefaultAckTimeout
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// check reports settings that cannot work together, before anything is
// opened.
func (c *Config) check() error {
	switch {
	case c.Mode != Core && c.Mode != JetStream:
		return fmt.Errorf("natsout: unknown mode %d", int(c.Mode))
	case countSet(c.CredsFile, c.NkeySeedFile, c.User, c.Token) > 1:
		return errors.New("natsout: set one NATS authentication: a creds file, an nkey seed, a user and password, or a token")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("natsout: a TLS client certificate needs its key and the other way round")
	case c.Password != "" && c.User == "":
		return errors.New("natsout: a NATS password needs a user")
	case c.StreamCreate && c.Mode == JetStream && c.Stream == "":
		return errors.New("natsout: creating a stream needs a stream name")
	case c.StreamCreate && c.Mode == JetStream && len(c.StreamSubjects) == 0:
		return fmt.Errorf("natsout: stream %q: creating it needs its subjects", c.Stream)
	}
	return nil
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}
