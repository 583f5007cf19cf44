package function_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/function"
)

// Decode shows what the ingress makes of a request: here a KafkaSource
// delivery (a binary CloudEvent whose data is RGW's envelope) becomes the
// record's own CloudEvent.
func ExampleDecode() {
	body, _ := os.ReadFile("../samples/events/reef-put-capture.json")
	h := http.Header{
		"Ce-Specversion": {"1.0"},
		"Ce-Id":          {"partition:0/offset:42"},
		"Ce-Type":        {"dev.knative.kafka.event"},
		"Ce-Source":      {"/apis/v1/namespaces/ceph/kafkasources/rgw#bucket-events"},
	}
	mode, events, err := function.Decode(context.Background(), h, body, cloudevent.Options{})
	if err != nil {
		panic(err)
	}
	ev := events[0]
	fmt.Println(mode, len(events))
	fmt.Println(ev.ID())
	fmt.Println(ev.Type(), ev.Source(), ev.Subject())
	// Output:
	// binary 1
	// 1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification
	// com.amazonaws.ObjectCreated:Put ceph:s3.default.jayanth notification.json
}

// A Function is what Knative's func scaffolding hosts; cmd/rgw-nats hosts it
// the same way: Start, then serve Handle, with Ready on the readiness probe.
func ExampleNew() {
	f := function.New()
	ready, _ := f.Ready(context.Background())
	fmt.Println("ready before Start:", ready)
	// Output: ready before Start: false
}
