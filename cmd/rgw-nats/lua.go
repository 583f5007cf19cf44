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
	"net/http"
	"os"
	"slices"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
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
		fmt.Fprintln(stderr, "Usage: rgw-nats lua test SCRIPT [EVENT.json...]\n\nSCRIPT is a .lua file or a directory of them (a chain). Each EVENT file holds an RGW\nnotification or a CloudEvent (structured JSON, or an array for a batch); with none,\nstandard input is read. LUA_* and NATS_SUBJECT, CE_DATA and K_CE_OVERRIDES apply as in serve.")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "test" {
		fs.Usage()
		return fmt.Errorf("%w: lua takes the subcommand test", errUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
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
	tmpl, err := subject.Parse(cfg.NATSSubject)
	if err != nil {
		return err
	}
	overrides, err := cloudevent.ParseOverrides(cfg.CEOverrides)
	if err != nil {
		return err
	}
	mapping := cloudevent.Options{Envelope: cfg.CEData == "envelope", Extensions: overrides}
	cfg.LuaScript, cfg.LuaReload = fs.Arg(0), false
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	engine, err := lua.New(ctx, cfg.LuaScript, function.LuaOptions(&cfg, log)...)
	if err != nil {
		return err
	}
	defer engine.Close()

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
		h := http.Header{"Content-Type": {contentTypeOf(body)}}
		_, events, err := function.Decode(ctx, h, body, mapping)
		if err != nil {
			fmt.Fprintf(stdout, "%s: rejected with 4xx: %v\n", name, err)
			failed++
			continue
		}
		for i := range events {
			ev := &events[i]
			outs, err := engine.Transform(ctx, ev)
			if err != nil {
				fmt.Fprintf(stdout, "=== %s event %s: ERROR (the service would answer 5xx): %v\n", name, ev.ID(), err)
				failed++
				continue
			}
			if len(outs) == 0 {
				fmt.Fprintf(stdout, "=== %s event %s: dropped\n", name, ev.ID())
				continue
			}
			fmt.Fprintf(stdout, "=== %s event %s: %d message(s)\n", name, ev.ID(), len(outs))
			for _, o := range outs {
				printOutput(stdout, tmpl, o)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d failure(s)", failed)
	}
	return nil
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

func printOutput(w io.Writer, tmpl *subject.Template, o lua.Output) {
	subj := o.Subject
	if subj == "" && o.Event != nil {
		subj = tmpl.Execute(o.Event)
	}
	fmt.Fprintf(w, "--> %s\n", subj)
	for _, k := range slices.Sorted(maps.Keys(o.Header)) {
		for _, v := range o.Header[k] {
			fmt.Fprintf(w, "    %s: %s\n", k, v)
		}
	}
	var payload []byte
	if o.Event != nil {
		payload, _ = json.Marshal(o.Event)
	} else {
		payload = o.Raw
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, payload, "    ", "  ") == nil {
		fmt.Fprintf(w, "    %s\n", pretty.Bytes())
	} else {
		fmt.Fprintf(w, "    %q\n", payload)
	}
}
