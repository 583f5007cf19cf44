//go:build !nonatsserver

package natsout_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/internal/embedded"
)

func ExampleConnect() {
	srv, err := embedded.Start("127.0.0.1:0", "")
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

	ev := event.New()
	ev.SetID("1713693798.430517.a600232")
	ev.SetSource("ceph:s3.default.photos")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	m, _ := binding.Encode(&ev, "rgw.photos.ObjectCreated.Put", binding.Structured, nil)
	// The same event twice, as when RGW redelivers: JetStream keeps one.
	errs := pub.Publish(ctx, []binding.Message{m, m})
	fmt.Println("errors:", errs[0], errs[1])
	fmt.Println("duplicates:", pub.Stats().Duplicates)
	// Output:
	// errors: <nil> <nil>
	// duplicates: 1
}
