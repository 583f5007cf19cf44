package adapter_test

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter"
)

// A request's Result counts its events by outcome; the count is the value
// of the Rgwnats-Outcome header every HTTP answer carries.
func ExampleResult_Count() {
	res := adapter.Result{Outcomes: []adapter.Outcome{
		{EventID: "a", Status: adapter.Published},
		{EventID: "b", Status: adapter.Duplicate},
		{EventID: "c", Status: adapter.DeadLettered, Reason: adapter.ReasonScript},
	}}
	fmt.Printf("%s: %s\n", adapter.HeaderOutcome, res.Count())
	// Output: Rgwnats-Outcome: published=1, duplicate=1, dropped=0, deadlettered=1, failed=0
}
