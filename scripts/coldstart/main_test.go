package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
)

// TestBenchRuns drives a short benchmark end to end (two cold starts, a
// small load) against a real nats-server, so the driver behind
// scripts/bench-coldstart.sh keeps working. It checks that every step
// reports, not how fast anything is.
func TestBenchRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := filepath.Join(t.TempDir(), "rgw-nats")
	if out, err := exec.Command("bash", "../build.sh", bin).CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	ns := natsserver.RunServer(&opts)
	defer ns.Shutdown()
	body, err := os.ReadFile("../../samples/events/pacific-16.2.15/persistent-put.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"core", "jetstream"} {
		var out strings.Builder
		b := bench{bin: bin, natsURL: ns.ClientURL(), body: body, mode: mode, out: &out}
		if err := b.run(2, 200, 4, 20*time.Second, 100*time.Millisecond); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out.String())
		}
		for _, want := range []string{"exec -> readiness 200:", "exec -> first event on NATS:", "idle RSS", "200 requests (0 failed)", "200 events received", "RSS under load"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: report lacks %q:\n%s", mode, want, out.String())
			}
		}
		t.Logf("%s:\n%s", mode, out.String())
	}
}
