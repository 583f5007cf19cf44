// Command rgw-nats runs the RGW-to-NATS adapter as a plain binary and offers
// small helpers for people: send a payload to a running adapter, tail a NATS
// subject, and try a Lua script offline.
//
// It holds flags and process lifecycle only: everything else is in package
// function and package adapter.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rgw-nats/rgw-nats/function"
)

const usage = `rgw-nats: Ceph RGW bucket notifications -> CloudEvents -> (Lua) -> NATS

Usage:
  rgw-nats [serve]                  run the adapter (configured by environment variables)
  rgw-nats send [flags] FILE...     POST payloads (RGW JSON or CloudEvents JSON) to a running adapter
  rgw-nats tail [flags] [SUBJECT]   print the CloudEvents published on SUBJECT (default: the stream's subjects)
  rgw-nats lua test SCRIPT [EVENT.json...]
                                    run a Lua script offline on payloads and print what would be published
  rgw-nats help                     this text

Run "rgw-nats COMMAND -h" for a command's flags. With no NATS_URL, serve starts an
embedded nats-server, so "rgw-nats" alone works on a bare machine.

Environment (serve reads these; tail reads the NATS_* ones):
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rgw-nats:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks a command line that cannot be run.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "send":
		return send(ctx, args, stdout, stderr)
	case "tail":
		return tail(ctx, args, stdout, stderr)
	case "lua":
		return luaCommand(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return function.PrintUsage(stdout)
	}
	fmt.Fprint(stderr, usage)
	function.PrintUsage(stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}
