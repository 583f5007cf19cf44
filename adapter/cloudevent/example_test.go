package cloudevent_test

import (
	"fmt"
	"os"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

func ExampleFromRecord() {
	// A real notification captured from Ceph Reef.
	body, err := os.ReadFile("../../samples/events/reef-put-capture.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	recs, err := rgw.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	overrides, err := cloudevent.ParseOverrides(`{"extensions":{"sinkname":"rgw-nats"}}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := cloudevent.FromRecord(&recs[0], cloudevent.Options{Extensions: overrides})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(ev.Context)
	fmt.Printf("data: %.60s...\n", ev.Data())
	// Output:
	// Context Attributes,
	//   specversion: 1.0
	//   type: com.amazonaws.ObjectCreated:Put
	//   source: ceph:s3.default.jayanth
	//   subject: notification.json
	//   id: 1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification
	//   time: 2024-04-21T10:03:18.419013Z
	//   datacontenttype: application/json
	// Extensions,
	//   bucket: jayanth
	//   configurationid: HTTPNotification
	//   eventname: ObjectCreated:Put
	//   objectkey: notification.json
	//   sinkname: rgw-nats
	// data: {"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"d...
}

func ExampleID() {
	// The documentation's example has no eventId: the id is derived from
	// the record's bytes, so a redelivery gets the same one.
	body, err := os.ReadFile("../../samples/events/docs-example-lenient.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	first, _ := rgw.Decode(body)
	again, _ := rgw.Decode(body)
	fmt.Println(cloudevent.ID(&first[0]) == cloudevent.ID(&again[0]), len(cloudevent.ID(&first[0])))
	// Output:
	// true 36
}
