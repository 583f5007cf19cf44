package natsout

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

func benchPublisher(b *testing.B, mode Mode) (*Publisher, Message) {
	s := testutil.NATSOn(b, -1, b.TempDir())
	cfg := jsConfig(s.ClientURL())
	cfg.Mode = mode
	cfg.Logger = slog.New(slog.DiscardHandler)
	p := connect(b, cfg)
	waitReady(b, p)
	m, err := binding.Encode(testutil.Event1KiB(b), "rgw.jayanth.ObjectCreated.Put", binding.Structured, nil)
	if err != nil {
		b.Fatal(err)
	}
	return p, m
}

// BenchmarkPublishCore is one Publish (publish + flush round trip) per
// message, as for a single-record RGW request.
func BenchmarkPublishCore(b *testing.B) {
	p, m := benchPublisher(b, Core)
	msgs := []Message{m}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Publish(ctx, msgs)[0]; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishCoreParallel is concurrent requests sharing the
// connection, one message each.
func BenchmarkPublishCoreParallel(b *testing.B) {
	p, m := benchPublisher(b, Core)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		msgs := []Message{m}
		for pb.Next() {
			if err := p.Publish(ctx, msgs)[0]; err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishJetStream is one Publish (publish + ack) per message, each
// with a new msg id so that every one is stored.
func BenchmarkPublishJetStream(b *testing.B) {
	p, m := benchPublisher(b, JetStream)
	ctx := context.Background()
	msgs := []Message{m}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		msgs[0].MsgID = strconv.Itoa(i)
		msgs[0].Header = nats.Header{binding.HeaderMsgID: {msgs[0].MsgID}, binding.HeaderContentType: {binding.ContentTypeStructured}}
		if err := p.Publish(ctx, msgs)[0]; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishJetStreamParallel is concurrent requests, one message each.
func BenchmarkPublishJetStreamParallel(b *testing.B) {
	p, m := benchPublisher(b, JetStream)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		msgs := []Message{m}
		for pb.Next() {
			id := fmt.Sprint(n.Add(1))
			msgs[0].MsgID = id
			msgs[0].Header = nats.Header{binding.HeaderMsgID: {id}, binding.HeaderContentType: {binding.ContentTypeStructured}}
			if err := p.Publish(ctx, msgs)[0]; err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishBatch is a 16-record request: one flush or one wait for
// all acks per call; reported per message.
func BenchmarkPublishBatch(b *testing.B) {
	for _, mode := range []Mode{Core, JetStream} {
		b.Run(mode.String(), func(b *testing.B) {
			p, m := benchPublisher(b, mode)
			ctx := context.Background()
			msgs := make([]Message, 16)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				for j := range msgs {
					i++
					id := strconv.Itoa(i)
					msgs[j] = m
					msgs[j].MsgID = id
					msgs[j].Header = nats.Header{binding.HeaderMsgID: {id}, binding.HeaderContentType: {binding.ContentTypeStructured}}
				}
				for _, err := range p.Publish(ctx, msgs) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/msg")
		})
	}
}

// BenchmarkBaselineFlush is nats.go alone (PublishMsg + FlushWithContext)
// on the same message, to show what Publish adds.
func BenchmarkBaselineFlush(b *testing.B) {
	s := testutil.NATSOn(b, -1, b.TempDir())
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	m, err := binding.Encode(testutil.Event1KiB(b), "rgw.jayanth.ObjectCreated.Put", binding.Structured, nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
	for b.Loop() {
		if err := nc.PublishMsg(msg); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultAckTimeout)
		err := nc.FlushWithContext(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
}
