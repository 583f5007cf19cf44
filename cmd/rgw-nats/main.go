// Command rgw-nats runs the RGW-to-NATS adapter as a plain binary and offers
// small helpers for people: send a payload to a running adapter, tail a NATS
// subject or a stream, replay dead letters, and try a Lua script offline.
//
// It holds flags and process lifecycle only: everything else is in package
// function and package adapter.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/buildinfo"
)

const usage = `rgw-nats: Ceph RGW bucket notifications -> CloudEvents -> (Lua) -> NATS

Usage:
  rgw-nats [serve]                  run the adapter (configured by environment variables)
  rgw-nats send [flags] FILE...     POST payloads (RGW JSON or CloudEvents JSON) to a running adapter
  rgw-nats tail [flags] [SUBJECT]   print the CloudEvents and dead letters published on SUBJECT (default:
                                    the adapter's); --stream NAME [--since 10m] replays what is stored
  rgw-nats replay --stream NAME [flags]
                                    POST the dead letters stored in a stream to the adapter again
  rgw-nats lua test SCRIPT [EVENT.json...]
                                    run a Lua script offline on payloads and print what would be published
  rgw-nats version                  the module version and VCS revision (also --version)
  rgw-nats help                     this text

Run "rgw-nats COMMAND -h" for a command's flags. With no NATS_URL, serve starts an
embedded nats-server, so "rgw-nats" alone works on a bare machine.

Environment (serve reads these; tail and replay read the NATS_* ones):
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(os.Stderr, "rgw-nats:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks a command line that cannot be run.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
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
		return serve(ctx, args, stdout, stderr)
	case "send":
		return send(ctx, args, stdout, stderr)
	case "tail":
		return tail(ctx, args, stdout, stderr)
	case "replay":
		return replay(ctx, args, stdout, stderr)
	case "lua":
		return luaCommand(ctx, args, stdout, stderr)
	case "version", "-version", "--version":
		return version(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return function.PrintUsage(stdout)
	}
	fmt.Fprint(stderr, usage)
	function.PrintUsage(stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// parseFlags parses a subcommand's flags. A request for help (-h, -help,
// --help) prints the usage on stdout and reports help, so that the command
// returns nil and exits 0; a bad flag prints the usage on stderr and is a
// usage error (exit 2). fs.Usage must write to fs.Output().
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (help bool, err error) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err = fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return true, nil
	case err != nil:
		stderr.Write(out.Bytes())
		return false, fmt.Errorf("%w: %s: %w", errUsage, fs.Name(), err)
	}
	// Later usage messages (a missing argument) go to stderr.
	fs.SetOutput(stderr)
	return false, nil
}

// version prints what `go build` recorded about this binary.
func version(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: rgw-nats version\n\nPrints the module version, the VCS revision (and whether the tree was modified), the\ncommit time and the Go version this binary was built with.")
	}
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	_, err := io.WriteString(stdout, buildinfo.Read().String())
	return err
}
