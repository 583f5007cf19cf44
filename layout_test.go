package rgwnats_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // everything it links, transitively
}

const module = "github.com/rgw-nats/rgw-nats"

func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	return pkgs
}

// TestImportDirection keeps the layout of DESIGN.md: cmd -> function ->
// adapter/*, never back; decoding and the pipeline know nothing of HTTP
// servers; only the binary links nats-server; the test helpers stay in tests.
func TestImportDirection(t *testing.T) {
	pkgs := listPackages(t)
	rules := []struct {
		pkgs   func(string) bool
		banned []string // import path prefixes; relative ones are of this module
		deps   bool     // check everything linked, not only direct imports
		why    string
	}{
		{under("adapter"), []string{"function", "cmd", "net/http", "internal/embedded", "internal/testutil"}, false,
			"the pipeline knows nothing of HTTP servers, Knative or the binary"},
		{under("adapter"), []string{"github.com/nats-io/nats-server"}, true,
			"the adapter must not link nats-server"},
		{under("adapter"), []string{"github.com/prometheus", "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"}, true,
			"the pipeline is observed from function (Stats, observers, a tracer it is given): no metrics library, no tracing SDK"},
		{is("adapter/tracecontext"), []string{"adapter", "github.com/nats-io"}, false,
			"trace context handling is pure"},
		{under("function"), []string{"cmd", "internal/embedded", "internal/testutil"}, false,
			"function is the HTTP shell; the embedded server belongs to the binary"},
		{under("function"), []string{"github.com/nats-io/nats-server"}, true,
			"a func-built image must not link nats-server"},
		{under("samples/xray"), []string{"github.com/nats-io/nats-server", "github.com/rgw-nats/rgw-nats/adapter/natsout"}, true,
			"a consumer that only decodes must not link the server or the publisher"},
		{is("adapter/rgw"), []string{"adapter", "github.com/cloudevents", "github.com/nats-io", "github.com/yuin"}, false,
			"RGW decoding knows only the RGW format"},
		{is("adapter/binding"), []string{"adapter/natsout", "adapter/lua", "adapter/ingress", "net/http"}, false,
			"the binding is pure encoding"},
		{is("adapter/ingress"), []string{"adapter/natsout", "adapter/lua", "github.com/nats-io/nats.go/jetstream"}, false,
			"ingress decodes requests only"},
		{under("function"), []string{"adapter/kvtable", "adapter/cloudevent", "adapter/subject"}, false,
			"the pipeline's parts are assembled by adapter/service alone, from one Settings: function builds through it"},
		{under("cmd"), []string{"adapter/kvtable", "adapter/cloudevent", "adapter/subject", "adapter/lua"}, false,
			"the binary's commands build the pipeline or connect to NATS through adapter/service, never from the parts"},
		{is("adapter/service"), []string{"function", "cmd", "net/http", "github.com/prometheus"}, false,
			"the builder knows the pipeline's parts only"},
		{is("adapter/lua/lua53"), []string{"adapter", "function", "cmd", "github.com/yuin", "github.com/nats-io", "github.com/cloudevents"}, false,
			"the Lua 5.3 front end knows only Lua source text"},
		{is("internal/jsonstr"), []string{"adapter", "function", "cmd", "internal", "samples"}, false,
			"the JSON scanning helpers are shared by every JSON reader: they import nothing of the project"},
		{is("function/internal/oidcauth"), []string{"adapter", "function", "cmd", "github.com/nats-io"}, false,
			"OIDC token verification knows nothing of rgw-nats"},
		{is("internal/testutil"), []string{"adapter", "function", "cmd"}, false,
			"every package's tests can use the helpers"},
	}
	for _, r := range rules {
		n := 0
		for name, p := range pkgs {
			if !r.pkgs(name) {
				continue
			}
			n++
			list := p.Imports
			if r.deps {
				list = p.Deps
			}
			for _, imp := range list {
				rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
				for _, b := range r.banned {
					if rel == b || strings.HasPrefix(rel, b+"/") || strings.HasPrefix(imp, b) && strings.Contains(b, ".") {
						t.Errorf("%s imports %s: %s", name, imp, r.why)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("rule %q matches no package", r.why)
		}
	}
	// The binary links the embedded server, or the rule above proves nothing.
	if !slices.ContainsFunc(pkgs["cmd/rgw-nats"].Deps, func(d string) bool { return strings.HasPrefix(d, "github.com/nats-io/nats-server") }) {
		t.Error("cmd/rgw-nats does not link nats-server: the import rules look at the wrong packages")
	}
}

func under(dir string) func(string) bool {
	return func(name string) bool { return name == dir || strings.HasPrefix(name, dir+"/") }
}

func is(dir string) func(string) bool { return func(name string) bool { return name == dir } }
