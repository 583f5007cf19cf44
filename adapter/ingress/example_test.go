package ingress_test

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// Decode shows what the ingress makes of a request: here a KafkaSource
// delivery (a binary CloudEvent whose data is RGW's envelope) becomes the
// record's own CloudEvent.
func ExampleDecode() {
	body := events.Read("reef-put-capture.json")
	h := ingress.Header{
		"Ce-Specversion": {"1.0"},
		"Ce-Id":          {"partition:0/offset:42"},
		"Ce-Type":        {"dev.knative.kafka.event"},
		"Ce-Source":      {"/apis/v1/namespaces/ceph/kafkasources/rgw#bucket-events"},
	}
	req, err := ingress.Decode(h, body, cloudevent.Options{})
	if err != nil {
		panic(err)
	}
	ev := req.Events[0]
	fmt.Println(req.Mode, len(req.Events))
	fmt.Println(ev.ID())
	fmt.Println(ev.Type(), ev.Source(), ev.Subject())
	// Output:
	// binary 1
	// 1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification
	// com.amazonaws.ObjectCreated:Put ceph:s3.default.jayanth notification.json
}
