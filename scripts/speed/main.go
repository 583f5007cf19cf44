// Command speed is the driver behind scripts/bench.sh: it puts rgw-nats, in
// each of its modes, side by side with floors (servers that do the least an
// honest adapter can do) and with the CloudEvents SDK's way, under one load
// generator (wrk) in one run, and prints each row's throughput as a ratio to
// its floor. Ratios are what to compare across machines; absolute numbers
// are not. It is a benchmark for people, not a test: nothing times it.
//
//	speed run ...        the benchmark (see scripts/bench.sh)
//	speed serve TARGET   one comparison server (floor-core, floor-jetstream, sdk-go)
//	speed host           rgw-nats in-process behind a connection rule
//
// Everything listens and connects on loopback only.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: speed run|serve|host [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(args)
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		natsURL := fs.String("nats", "", "NATS URL")
		addr := fs.String("addr", "127.0.0.1:0", "listen address")
		err = profiled(fs, args, func() error { return serveTarget(fs.Arg(0), *natsURL, *addr) })
	case "host":
		fs := flag.NewFlagSet("host", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:0", "listen address")
		idle := fs.Duration("idle", 90*time.Second, "http.Server IdleTimeout")
		every := fs.Int64("close-every", 0, "answer every Nth response on a connection with Connection: close (0: never)")
		err = profiled(fs, args, func() error { return hostRGWNATS(*addr, *idle, *every) })
	default:
		fmt.Fprintf(os.Stderr, "speed: unknown command %q\n", cmd)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "speed:", err)
		os.Exit(1)
	}
}

// profiled adds -cpuprofile to fs, parses args and runs serve, profiling the
// CPU for as long as it runs when asked to (the servers stop on SIGTERM, so
// a profile covers exactly the load they were given).
func profiled(fs *flag.FlagSet, args []string, serve func() error) error {
	path := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.Parse(args)
	if *path == "" {
		return serve()
	}
	f, err := os.Create(*path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return serve()
}
