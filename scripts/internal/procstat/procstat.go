// Package procstat reads what the benchmark drivers (scripts/coldstart,
// scripts/speed) measure of a process from Linux's /proc. It imports
// nothing of this module.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TicksPerSecond is USER_HZ, the unit of CPUTicks on Linux.
const TicksPerSecond = 100

// CPUTicks is the user + system CPU time of pid, in clock ticks.
func CPUTicks(pid int) (int64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the ')'.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return utime + stime, nil
}
