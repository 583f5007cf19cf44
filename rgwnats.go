// Package rgwnats exists for Knative Functions: func's Go scaffolding builds
// the function from the top-level .go files next to func.yaml and calls the
// package-level New found there. The function itself lives in package
// function; this package only hands it over, so it must not import anything
// else and must never declare a package-level Handle (func refuses a
// function that has both New and Handle).
package rgwnats

import "github.com/rgw-nats/rgw-nats/function"

// New returns the function instance that func's scaffolding serves: its
// Handle answers RGW and CloudEvents POSTs, and its Start, Stop, Ready and
// Alive hooks run the NATS connection's lifecycle.
func New() *function.Function { return function.New() }
