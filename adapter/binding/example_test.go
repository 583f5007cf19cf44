package binding_test

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
)

func exampleEvent() *event.Event {
	ev := event.New()
	ev.SetID("1713693798.430517.a600232")
	ev.SetSource("ceph:s3.default.photos")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSubject("holiday 2024/café.jpg")
	ev.SetTime(time.Date(2024, 4, 21, 10, 3, 18, 0, time.UTC))
	ev.SetExtension("bucket", "photos")
	_ = ev.SetData(event.ApplicationJSON, map[string]any{"size": 177})
	return &ev
}

func ExampleEncode() {
	m, err := binding.Encode(exampleEvent(), "rgw.photos.ObjectCreated.Put", binding.Binary, nats.Header{"X-Tenant": {"blue"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m.Header)) {
		fmt.Printf("%s: %s\n", k, m.Header.Get(k))
	}
	fmt.Printf("payload: %s\n", m.Data)
	// Output:
	// Nats-Msg-Id: 1713693798.430517.a600232
	// X-Tenant: blue
	// ce-bucket: photos
	// ce-datacontenttype: application/json
	// ce-id: 1713693798.430517.a600232
	// ce-source: ceph:s3.default.photos
	// ce-specversion: 1.0
	// ce-subject: holiday%202024/caf%C3%A9.jpg
	// ce-time: 2024-04-21T10:03:18Z
	// ce-type: com.amazonaws.ObjectCreated:Put
	// payload: {"size":177}
}

func ExampleDecode() {
	m, _ := binding.Encode(exampleEvent(), "rgw.photos.ObjectCreated.Put", binding.Structured, nil)
	fmt.Println(m.Header.Get("Content-Type"))
	ev, err := binding.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.ID(), ev.Subject(), ev.Extensions()["bucket"], string(ev.Data()))
	// Output:
	// application/cloudevents+json
	// 1713693798.430517.a600232 holiday 2024/café.jpg photos {"size":177}
}
