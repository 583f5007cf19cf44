package natsout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func (p *Publisher) needStream() bool {
	return p.cfg.Mode == JetStream && p.cfg.StreamCreate
}

// kickStream asks the stream goroutine to (re)check the stream. It never
// blocks: one pending request is enough.
func (p *Publisher) kickStream() {
	select {
	case p.streamKick <- struct{}{}:
	default:
	}
}

// streamLoop runs for the life of a JetStream Publisher. After each
// (re)connect it creates or checks the stream, retrying with backoff while
// the connection stays up, so that a server that was down at start (or that
// lost its store) gets the stream as soon as it is reachable.
func (p *Publisher) streamLoop() {
	for {
		select {
		case <-p.stop:
			return
		case <-p.streamKick:
		}
		backoff := 250 * time.Millisecond
		for p.conn().IsConnected() {
			err := p.setupStream()
			if err == nil {
				break
			}
			// During a failover the stream's leader moves and look-ups time
			// out for a while: that is normal, and only a stream this
			// process must create, still failing after a few tries, is
			// worth a warning.
			level := slog.LevelInfo
			if p.cfg.StreamCreate && backoff >= 4*time.Second {
				level = slog.LevelWarn
			}
			p.log.Log(context.Background(), level, "nats stream check failed; retrying", "stream", p.cfg.Stream, "retry_in", backoff, "error", err)
			select {
			case <-p.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

func (p *Publisher) setupStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), p.ackTimeout)
	defer cancel()
	defer p.checkCaptured(ctx)
	if p.cfg.Stream == "" {
		return nil // nothing named: any stream capturing the subjects will do
	}
	if !p.cfg.StreamCreate {
		// The stream is the operator's: never change it, only say clearly
		// when it is missing, since every publish will then fail.
		_, err := p.jetstream().Stream(ctx, p.cfg.Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if p.streamWarned.CompareAndSwap(false, true) {
				p.log.Warn("nats stream does not exist; JetStream publishes will fail until the operator creates it (or set stream creation on)", "stream", p.cfg.Stream)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up stream %q: %w", p.cfg.Stream, err)
		}
		return nil
	}
	err := p.ensureStream(ctx)
	if err != nil {
		return err
	}
	p.streamOK.Store(true)
	return nil
}

// ensureStream creates the stream, or adds the subjects it lacks. Settings
// of an existing stream (limits, replicas, retention) stay as they are.
func (p *Publisher) ensureStream(ctx context.Context) error {
	s, err := p.jetstream().Stream(ctx, p.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.jetstream().CreateStream(ctx, jetstream.StreamConfig{
			Name:       p.cfg.Stream,
			Subjects:   p.cfg.StreamSubjects,
			Duplicates: p.cfg.DuplicateWindow,
			Replicas:   p.cfg.Replicas,
		})
		if err != nil {
			return fmt.Errorf("create stream %q: %w", p.cfg.Stream, err)
		}
		p.log.Info("nats stream created", "stream", p.cfg.Stream, "subjects", p.cfg.StreamSubjects)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %q: %w", p.cfg.Stream, err)
	}
	cfg := s.CachedInfo().Config
	var missing []string
	for _, subj := range p.cfg.StreamSubjects {
		if !slices.Contains(cfg.Subjects, subj) {
			missing = append(missing, subj)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cfg.Subjects = append(cfg.Subjects, missing...)
	if _, err := p.jetstream().UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("add subjects %v to stream %q: %w", missing, p.cfg.Stream, err)
	}
	p.log.Info("nats stream subjects added", "stream", p.cfg.Stream, "subjects", missing)
	return nil
}

// checkCaptured says, once per setup, which of Config.MustCapture no stream
// captures: a dead letter published there would fail, and the events it
// stands for would be retried instead.
func (p *Publisher) checkCaptured(ctx context.Context) {
	for _, subj := range p.cfg.MustCapture {
		probe := strings.ReplaceAll(strings.ReplaceAll(subj, ">", "x"), "*", "x")
		if _, err := p.jetstream().StreamNameBySubject(ctx, probe); errors.Is(err, jetstream.ErrStreamNotFound) {
			p.log.Warn("no JetStream stream captures this subject; publishes to it will fail", "subject", subj)
		}
	}
}

// StreamFor names the JetStream stream that captures subj, or returns an
// error wrapping ErrNoStream when none does (ErrUnavailable when NATS did
// not answer). Core mode has no streams: it returns "" and nil.
func (p *Publisher) StreamFor(ctx context.Context, subj string) (string, error) {
	if p.cfg.Mode != JetStream {
		return "", nil
	}
	name, err := p.jetstream().StreamNameBySubject(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return "", fmt.Errorf("%w: %q", ErrNoStream, subj)
	case err != nil:
		return "", fmt.Errorf("%w: stream look-up for %q: %w", ErrUnavailable, subj, err)
	}
	return name, nil
}
