package scripts_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchSmoke runs scripts/bench.sh for one second per row, the Lua and
// rule rows included: every row must run (JetStream streams holding every
// answered request) and print a ratio and its count of non-2xx answers. It checks that the benchmark works, not how
// fast anything is: no number is compared with a threshold.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rgw-nats and nats-server and runs wrk: not with -short")
	}
	cmd := exec.Command("./bench.sh", "--duration", "1", "--lua", "--rules")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	// | target | req/s | events/s | vs its floor | by CPU | CPU | nats CPU | non-2xx |
	rows := regexp.MustCompile(`(?m)^\| ([^|]+) \| (\d+) \| \d+ \| ([0-9.]+)[^|]* \|[^|]+\|[^|]+\|[^|]+\| (\d+) \|$`).FindAllStringSubmatch(string(out), -1)
	if len(rows) != 23 {
		t.Fatalf("%d table rows, want 23\n%s", len(rows), out)
	}
	for _, r := range rows {
		if n, _ := strconv.Atoi(r[2]); n <= 0 {
			t.Errorf("row %q: %s req/s", strings.TrimSpace(r[1]), r[2])
		}
	}
	for _, want := range []string{"rgw-nats JetStream keep-alive / the sdk-go way: ", "rgw-nats core keep-alive / rgw-nats JetStream keep-alive: ",
		"anonymize.lua adds, CPU µs per event, lua-anonymize-100: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no line %q\n%s", want, out)
		}
	}
}
