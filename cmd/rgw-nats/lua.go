package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/service"
	"github.com/rgw-nats/rgw-nats/function"
)

// luaCommand is `rgw-nats lua test SCRIPT [EVENT.json...]`: it decodes each
// payload exactly as the HTTP ingress would (RGW JSON or CloudEvents), runs
// the script on every event and prints what would be published where. No
// NATS, no cluster: a script author's inner loop.
func luaCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lua test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: rgw-nats lua test SCRIPT [EVENT.json...]\n\nSCRIPT is a .lua file or a directory of them (a chain). Each EVENT file holds an RGW\nnotification or a CloudEvent (structured JSON, or an array for a batch); with none,\nstandard input is read. LUA_* and NATS_SUBJECT, CE_DATA and K_CE_OVERRIDES apply as in serve.")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "test" {
		// "lua -h" asks for help; anything else is not a command.
		if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
			return err
		}
		fs.Usage()
		return fmt.Errorf("%w: lua takes the subcommand test", errUsage)
	}
	if help, err := parseFlags(fs, args[1:], stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return fmt.Errorf("%w: lua test needs a SCRIPT", errUsage)
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		return err
	}
	cfg.LuaScript, cfg.LuaReload = fs.Arg(0), false
	cfg.DedupWindow = 0 // the same file twice is two runs, not a resend
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The service's own pipeline, from the same builder, with a publisher
	// that records instead of sending: what is printed is what serve would
	// publish.
	var rec adapter.Recorder
	svc, err := service.New(ctx, cfg.Settings, service.Options{Logger: log, Publisher: &rec})
	if err != nil {
		return err
	}
	defer svc.Close(context.Background())
	pipe := svc.Pipeline

	inputs := fs.Args()[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	failed := 0
	for _, name := range inputs {
		body, err := readInput(name)
		if err != nil {
			return err
		}
		h := ingress.Header{"Content-Type": {contentTypeOf(body)}}
		res := pipe.Handle(ctx, adapter.Request{Header: h, Body: body})
		msgs := rec.Take()
		if res.Err != nil {
			fmt.Fprintf(stdout, "%s: %s, %s: %v\n", name, verdict(&res), res.Reason, res.Err)
			failed++
			continue
		}
		for _, o := range res.Outcomes {
			switch o.Status {
			case adapter.Failed:
				fmt.Fprintf(stdout, "=== %s event %s: ERROR, %s (%s): %v\n", name, o.EventID, o.Class, o.Reason, o.Err)
				failed++
			case adapter.DeadLettered:
				// The service would answer 2xx, but the script failed: that
				// is what a script author runs this to find out.
				fmt.Fprintf(stdout, "=== %s event %s: FAILED, dead-lettered (%s): %v\n", name, o.EventID, o.Reason, o.Err)
				failed++
			default:
				fmt.Fprintf(stdout, "=== %s event %s: %s\n", name, o.EventID, o.Status)
			}
		}
		fmt.Fprintf(stdout, "=== %s: %d message(s)\n", name, len(msgs))
		for _, m := range msgs {
			printMessage(stdout, m)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d failure(s)", failed)
	}
	return nil
}

// verdict names the answer the service would give (the one table,
// adapter.AnswerFor).
func verdict(res *adapter.Result) string {
	a := res.Answer()
	if res.DeadLettered {
		return fmt.Sprintf("dead-lettered (answered %d)", a.Status)
	}
	retry := ""
	if a.Retry {
		retry = ", retried"
	}
	return fmt.Sprintf("%s failure (answered %d%s)", a.Class, a.Status, retry)
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

func printMessage(w io.Writer, m binding.Message) {
	fmt.Fprintf(w, "--> %s\n", m.Subject)
	for _, k := range slices.Sorted(maps.Keys(m.Header)) {
		for _, v := range m.Header[k] {
			fmt.Fprintf(w, "    %s: %s\n", k, v)
		}
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, m.Data, "    ", "  ") == nil {
		fmt.Fprintf(w, "    %s\n", pretty.Bytes())
	} else {
		fmt.Fprintf(w, "    %q\n", m.Data)
	}
}
