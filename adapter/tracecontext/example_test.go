package tracecontext_test

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
)

// The trace context of an HTTP request goes on as the NATS headers of what
// is published for it.
func ExampleFromHeader() {
	in := map[string][]string{
		"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":  {"congo=t61rcWkgMzE"},
	}
	out := map[string][]string{}
	tracecontext.FromHeader(in).SetHeader(out)
	fmt.Println(out["traceparent"][0])
	fmt.Println(out["tracestate"][0])
	// Output:
	// 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// congo=t61rcWkgMzE
}
