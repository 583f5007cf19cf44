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
			if !errors.Is(err, errUncaptured) { // said once by checkCaptured
				p.log.Log(context.Background(), level, "nats stream check failed; retrying", "stream", p.cfg.Stream, "retry_in", backoff, "error", err)
			}
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
	if err := p.setupNamedStream(ctx); err != nil {
		return err
	}
	return p.checkCaptured(ctx)
}

func (p *Publisher) setupNamedStream(ctx context.Context) error {
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

// errUncaptured is a stream setup that found a subject of
// Config.MustCapture that no stream captures; the setup is retried (with
// backoff, up to 30 s apart) until one does.
var errUncaptured = errors.New("a subject that must be stored is captured by no stream")

// needCapture: in JetStream mode a dead letter that no stream captures
// cannot be stored, and the event it stands for cannot be answered 2xx.
// A publish to it does not even fail fast: with a core subscriber on the
// subject (`rgw-nats tail`) nobody answers, and every attempt waits the
// whole ack timeout. So the Publisher is not ready until some stream
// captures every such subject.
func (p *Publisher) needCapture() bool {
	return p.cfg.Mode == JetStream && len(p.cfg.MustCapture) > 0
}

// checkCaptured checks that some stream captures each of
// Config.MustCapture. In JetStream mode one that is not makes the Publisher
// not ready, said in one warning line at start, after each reconnect and
// whenever the reason changes; in core mode (where a dead letter is
// confirmed by the flush) it is only a warning.
func (p *Publisher) checkCaptured(ctx context.Context) error {
	for _, subj := range p.cfg.MustCapture {
		probe := strings.ReplaceAll(strings.ReplaceAll(subj, ">", "x"), "*", "x")
		_, err := p.jetstream().StreamNameBySubject(ctx, probe)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if !p.needCapture() {
				p.log.Warn("no JetStream stream captures this subject; publishes to it are not stored", "subject", subj)
				continue
			}
			why := fmt.Sprintf("no JetStream stream captures %s: its messages could not be stored", subj)
			if old := p.uncaptured.Swap(&why); old == nil || *old != why {
				p.log.Warn("not ready: "+why, "subject", subj, "stream", p.cfg.Stream)
			}
			return errUncaptured
		case err != nil:
			return fmt.Errorf("look up the stream of %s: %w", subj, err)
		}
	}
	if old := p.uncaptured.Swap(new(string)); old != nil && *old != "" {
		p.log.Info("ready: every subject that must be stored is captured by a stream", "subjects", p.cfg.MustCapture)
	}
	return nil
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
