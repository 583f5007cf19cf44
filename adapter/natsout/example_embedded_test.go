//go:build !nonatsserver

package natsout_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

func ExampleConnect() {
	srv, err := natsout.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()

	ctx := context.Background()
	pub, err := natsout.Connect(ctx, natsout.Config{
		URL:            srv.URL(),
		Mode:           natsout.JetStream,
		Stream:         "RGW",
		StreamSubjects: []string{"rgw.>"},
		StreamCreate:   true,
		Logger:         slog.New(slog.DiscardHandler), // quiet for the example
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pub.WaitReady(waitCtx); err != nil {
		fmt.Println(err)
		return
	}

	m, _ := natsout.Encode(exampleEvent(), "rgw.photos.ObjectCreated.Put", natsout.Structured, nil)
	// The same event twice, as when RGW redelivers: JetStream keeps one.
	errs := pub.Publish(ctx, []natsout.Message{m, m})
	fmt.Println("errors:", errs[0], errs[1])
	fmt.Println("duplicates:", pub.Stats().Duplicates)
	// Output:
	// errors: <nil> <nil>
	// duplicates: 1
}
