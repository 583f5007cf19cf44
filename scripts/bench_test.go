package scripts_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchSmoke runs scripts/bench.sh for one second per row: every row
// must run (each answer 2xx, JetStream streams holding every answered
// request) and print a ratio. It checks that the benchmark works, not how
// fast anything is: no number is compared with a threshold.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rgw-nats and nats-server and runs wrk: not with -short")
	}
	cmd := exec.Command("./bench.sh", "--duration", "1", "--rules")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	rows := regexp.MustCompile(`(?m)^\| ([^|]+) \| (\d+) \| ([0-9.]+) \|`).FindAllStringSubmatch(string(out), -1)
	if len(rows) != 12 {
		t.Fatalf("%d table rows, want 12\n%s", len(rows), out)
	}
	for _, r := range rows {
		if n, _ := strconv.Atoi(r[2]); n <= 0 {
			t.Errorf("row %q: %s req/s", strings.TrimSpace(r[1]), r[2])
		}
	}
	for _, want := range []string{"rgw-nats JetStream keep-alive / the sdk-go way: ", "rgw-nats core keep-alive / rgw-nats JetStream keep-alive: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no line %q\n%s", want, out)
		}
	}
}
