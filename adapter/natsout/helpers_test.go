package natsout

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// connect opens a Publisher that reconnects quickly and closes with the test.
func connect(tb testing.TB, cfg Config) *Publisher {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Logger(tb)
	}
	p, err := Connect(context.Background(), cfg, WithReconnectWait(20*time.Millisecond))
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func waitReady(tb testing.TB, p *Publisher) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
