package rgwnats_test

import (
	"context"
	"log"
	"net/http"

	rgwnats "github.com/rgw-nats/rgw-nats"
)

// New is what func's scaffolding calls; this is roughly what the
// scaffolding's middleware then does with the result (cmd/rgw-nats does the
// same with its own server).
func ExampleNew() {
	ctx := context.Background()
	f := rgwnats.New()
	if err := f.Start(ctx, nil); err != nil { // reads the environment, connects to NATS
		log.Fatal(err)
	}
	defer f.Stop(ctx)
	http.HandleFunc("/", f.Handle)
	http.HandleFunc("/health/readiness", func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := f.Ready(r.Context()); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
