package function_test

import (
	"context"
	"fmt"

	"github.com/rgw-nats/rgw-nats/function"
)

// A Function is what Knative's func scaffolding hosts; cmd/rgw-nats hosts it
// the same way: Start, then serve Handle, with Ready on the readiness probe.
func ExampleNew() {
	f := function.New()
	ready, _ := f.Ready(context.Background())
	fmt.Println("ready before Start:", ready)
	// Output: ready before Start: false
}
