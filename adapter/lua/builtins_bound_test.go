package lua

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// TestBuiltinsBoundedBeforeAllocating: every built-in whose result size
// follows from its arguments refuses a result over the string bound (1 MiB)
// before it allocates it: the call allocates a few MiB at most (the 1 MB
// string the script builds, the event), not what was asked for. Before,
// string.pack("c2000000000", "") allocated 200 MB before its check,
// string.format of a hundred "%s" 100 MB, os.date of a long format 30 MB,
// and base64_encode, token and upper had no bound at all.
func TestBuiltinsBoundedBeforeAllocating(t *testing.T) {
	const budget = 8 << 20 // bytes one refused call may allocate in all
	for _, c := range []struct{ name, call string }{
		{"string.pack c2000000000", `string.pack("c2000000000", "")`},
		{"string.pack c900000 twice", `string.pack("c900000c900000", "", "")`},
		{"string.pack s4 twice", `string.pack("s4s4", big, big)`},
		{"string.pack z twice", `string.pack("zz", big, big)`},
		{"string.format 100 %s", `string.format(string.rep("%s", 100), table.unpack(bigs))`},
		{"string.format %q", `string.format("%q", big)`},
		{"string.rep", `string.rep(big, 1000)`},
		{"string.rep with separator", `string.rep("x", 1000, big)`},
		{"concatenation", `big .. big`},
		{"table.concat", `table.concat(bigs)`},
		{"table.concat separator", `table.concat(nums, big)`},
		{"string.gsub", `string.gsub(big, "x", "xxxx")`},
		{"os.date", `os.date(string.rep("%c", 500000))`},
		{"rgwnats.base64_encode", `require("rgwnats").base64_encode(big)`},
		{"rgwnats.token", `require("rgwnats").token(big)`},
		{"rgwnats.json.encode", `require("rgwnats").json.encode(bigs)`},
		{"string.upper of more than the bound", `string.upper(huge)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, `
local big = string.rep("x", 1000000)
local bigs, nums = {}, {}
for i = 1, 100 do bigs[i] = big end
for i = 1, 1000 do nums[i] = i end
function transform(ev)
  local huge = ev.id == "huge" and ev.data or ""
  local r = `+c.call+`
  return ev
end`, WithMemoryLimit(-1))
			ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			ev.SetID("huge")
			// The event's data is the only way a script gets a string over
			// the bound: a body that large.
			_ = ev.SetData("application/json", []byte(`"`+strings.Repeat("y", 2<<20)+`"`))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := e.Transform(context.Background(), ev)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
				t.Errorf("%s: %v, want the string bound", c.call, err)
			}
			if allocated > budget {
				t.Errorf("%s allocated %d MiB before it was refused, want under %d MiB", c.call, allocated>>20, budget>>20)
			}
			t.Logf("%s: allocated %.1f MiB; %v", c.call, float64(allocated)/(1<<20), err)
		})
	}
}
