package procstat

import (
	"os"
	"testing"
)

func TestCPUTicks(t *testing.T) {
	// Burn some CPU so that this process has at least one tick.
	x := 0
	for i := range 200_000_000 {
		x += i
	}
	_ = x
	n, err := CPUTicks(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("CPUTicks(self) = %d, %v", n, err)
	}
	if _, err := CPUTicks(0); err == nil {
		t.Error("CPUTicks(0) succeeded")
	}
	if _, err := CPUTicks(1 << 30); err == nil {
		t.Error("CPUTicks of a pid that does not exist succeeded")
	}
}
