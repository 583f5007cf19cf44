package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestActivatedListenerEnvironment: the variables are honoured only when
// LISTEN_PID names this process, and then only for exactly one socket.
func TestActivatedListenerEnvironment(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, pid, fds string
		err            string // "" when no listener and no error is wanted
	}{
		{name: "none"},
		{name: "another process", pid: strconv.Itoa(os.Getpid() + 1), fds: "1"},
		{name: "two sockets", pid: self, fds: "2", err: "exactly one socket"},
		{name: "no count", pid: self, err: `LISTEN_FDS=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LISTEN_PID", tc.pid)
			t.Setenv("LISTEN_FDS", tc.fds)
			if tc.pid == "" {
				os.Unsetenv("LISTEN_PID")
				os.Unsetenv("LISTEN_FDS")
			}
			ln, err := activatedListener()
			if ln != nil {
				ln.Close()
				t.Fatal("a listener from an environment that hands none over")
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			if tc.pid == self && os.Getenv("LISTEN_PID")+os.Getenv("LISTEN_FDS") != "" {
				t.Error("the variables meant for this process are still set")
			}
		})
	}
}

// TestSocketActivationAcrossRestart runs the binary the way systemd's socket
// activation does: the test holds the listening socket and hands it to each
// process. A request sent while rgw-nats is dead (SIGKILL) is not refused:
// it waits in the accept queue and the next process answers it (a 503 while
// that process is still connecting to NATS is an answer too). LISTEN_ADDRESS
// names a busy port, so serving at all proves the handed socket is used.
func TestSocketActivationAcrossRestart(t *testing.T) {
	bin := cliBinary(t)
	ns := testutil.NATS(t)
	got := testutil.Subscribe(t, ns.ClientURL(), "rgw.>")

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	file, err := held.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := "http://" + held.Addr().String()

	start := func() *exec.Cmd {
		// LISTEN_PID must be the pid of rgw-nats itself: sh execs it.
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, bin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LISTEN_FDS=1", "LISTEN_ADDRESS=" + busy.Addr().String(),
			"NATS_URL=" + ns.ClientURL(), "NATS_MODE=core", "LOG_FORMAT=json"}
		cmd.ExtraFiles = []*os.File{file}
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get(base + "/health/readiness"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready on the handed socket:\n%s", logs.String())
			}
		}
	}
	post := func() (int, error) {
		client := &http.Client{Timeout: 20 * time.Second}
		resp, err := client.Post(base+"/", "application/json", bytes.NewReader(fixture(t, "reef-put-capture.json")))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	first := start()
	if code, err := post(); err != nil || code/100 != 2 {
		t.Fatalf("POST to the first process: %d %v", code, err)
	}
	testutil.Receive(t, got, 1)

	first.Process.Kill()
	first.Wait()
	type answer struct {
		code int
		err  error
	}
	answered := make(chan answer, 1)
	go func() { code, err := post(); answered <- answer{code, err} }()
	select {
	case a := <-answered:
		t.Fatalf("a POST while rgw-nats was down was answered before a process took the socket: %d %v", a.code, a.err)
	case <-time.After(500 * time.Millisecond):
	}
	start()
	a := <-answered
	if a.err != nil {
		t.Fatalf("POST held across the restart: %v", a.err)
	}
	if a.code == http.StatusServiceUnavailable {
		// Accepted before the new process could publish: RGW sends it
		// again, and so does this test.
		a.code, a.err = post()
	}
	if a.err != nil || a.code/100 != 2 {
		t.Fatalf("POST held across the restart: %d %v", a.code, a.err)
	}
	testutil.Receive(t, got, 1) // the event sent during the restart
}
