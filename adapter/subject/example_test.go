package subject_test

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

func ExampleTemplate_Execute() {
	tmpl, err := subject.Parse("rgw.{bucket}.{event}")
	if err != nil {
		panic(err)
	}
	ev := event.New()
	ev.SetExtension(cloudevent.ExtBucket, "scans.eu")
	ev.SetExtension(cloudevent.ExtEventName, "ObjectCreated:Put")
	fmt.Println(tmpl.Execute(&ev))
	fmt.Println(tmpl.StreamSubjects())
	// Output:
	// rgw.scans%2Eeu.ObjectCreated.Put
	// rgw.>
}

func ExampleToken() {
	fmt.Println(subject.Token("x-ray/2024 scan.jpeg"))
	// Output: x-ray%2F2024%20scan%2Ejpeg
}
