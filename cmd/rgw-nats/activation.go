package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// listenFDStart is the first descriptor a supervisor hands over under
// systemd's socket activation protocol.
const listenFDStart = 3

// activatedListener returns the listening socket a supervisor handed over
// (systemd socket activation: LISTEN_PID names this process, LISTEN_FDS
// counts the descriptors from 3 on), or nil when there is none.
//
// Why it matters for RGW: the socket then outlives rgw-nats, so while
// rgw-nats restarts RGW's connections wait in the kernel's accept queue and
// get their answer from the new process instead of being refused. Ceph
// Pacific loses the completion of an HTTP push that fails the instant it is
// sent (a refused connection on the same host) once in a few thousand
// retries, and the persistent topic then stops for good (README, RGW).
//
// The variables are cleared once read, as the protocol asks, so that no
// child inherits them.
func activatedListener() (net.Listener, error) {
	pid, fds := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS")
	if pid == "" && fds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		// Meant for another process (the parent that was activated).
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if fds != "1" {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q, rgw-nats serves exactly one socket (one ListenStream= in the .socket unit)", fds)
	}
	f := os.NewFile(listenFDStart, "LISTEN_FD_3")
	if f == nil {
		return nil, fmt.Errorf("socket activation: descriptor %d is not open", listenFDStart)
	}
	defer f.Close() // FileListener holds its own duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket activation: descriptor %d is not a listening stream socket: %w", listenFDStart, err)
	}
	return ln, nil
}
