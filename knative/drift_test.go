package knative_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/function"
)

// serviceEnv is every variable rgw-nats reads: the env tags of its one
// configuration struct.
func serviceEnv(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[function.Config]()) {
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			names[name] = true
		}
	}
	if len(names) < 10 || !names["NATS_URL"] || !names["LUA_SCRIPT"] {
		t.Fatalf("function.Config has no usable env tags: %v", names)
	}
	return names
}

// injectedEnv is set by the platform, not by us; the manifests may mention
// them and the service may read them.
var injectedEnv = map[string]string{
	"K_SERVICE":       "Knative Serving",
	"K_REVISION":      "Knative Serving",
	"K_CONFIGURATION": "Knative Serving",
	"K_SINK":          "SinkBinding (rgw-nats publishes to NATS and ignores it)",
	"K_CE_OVERRIDES":  "SinkBinding",
}

// goRuntimeEnv is read by the Go runtime inside the service.
var goRuntimeEnv = []string{"GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG"}

// containerEnv is the environment of a workload's containers in a build, as
// the kubelet would assemble it: envFrom first (with prefix), then env,
// references resolved against the ConfigMaps and Secrets of the same build.
func containerEnv(t *testing.T, objs []object, workload object) map[string]string {
	t.Helper()
	env := map[string]string{}
	lookup := func(kind, name, key string) (string, bool) {
		o := find(objs, kind, name)
		if o == nil {
			t.Errorf("%s refers to %s %s, which is not in the build", workload, kind, name)
			return "", false
		}
		v, ok := configData(t, o)[key]
		if !ok && key != "" {
			t.Errorf("%s refers to key %s of %s %s, which has no such key", workload, key, kind, name)
		}
		return v, ok
	}
	for _, c := range list(dig(workload, "spec", "template", "spec", "containers")) {
		for _, ef := range list(dig(c, "envFrom")) {
			prefix := str(dig(ef, "prefix"))
			for ref, kind := range map[string]string{"configMapRef": "ConfigMap", "secretRef": "Secret"} {
				name := str(dig(ef, ref, "name"))
				if name == "" {
					continue
				}
				o := find(objs, kind, name)
				if o == nil {
					t.Errorf("%s imports %s %s, which is not in the build", workload, kind, name)
					continue
				}
				for k, v := range configData(t, o) {
					env[prefix+k] = v
				}
			}
		}
		for _, e := range list(dig(c, "env")) {
			name := str(dig(e, "name"))
			switch {
			case dig(e, "valueFrom", "configMapKeyRef") != nil:
				env[name], _ = lookup("ConfigMap", str(dig(e, "valueFrom", "configMapKeyRef", "name")), str(dig(e, "valueFrom", "configMapKeyRef", "key")))
			case dig(e, "valueFrom", "secretKeyRef") != nil:
				env[name], _ = lookup("Secret", str(dig(e, "valueFrom", "secretKeyRef", "name")), str(dig(e, "valueFrom", "secretKeyRef", "key")))
			case dig(e, "valueFrom") != nil:
				t.Errorf("%s: env %s uses a valueFrom this test cannot resolve", workload, name)
			default:
				env[name] = str(dig(e, "value"))
			}
		}
	}
	return env
}

// workloads are the objects that run containers.
func workloads(objs []object) []object {
	var out []object
	for _, o := range objs {
		if dig(o, "spec", "template", "spec", "containers") != nil {
			out = append(out, o)
		}
	}
	return out
}

// TestNoEnvDrift: every variable that func.yaml or any build of the
// manifests sets is one rgw-nats (or the Go runtime) reads, so a renamed or
// misspelt setting fails here instead of being silently ignored in a cluster.
func TestNoEnvDrift(t *testing.T) {
	reads := serviceEnv(t)
	known := func(name string) bool {
		_, injected := injectedEnv[name]
		return reads[name] || injected || slices.Contains(goRuntimeEnv, name)
	}
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		for _, w := range workloads(objs) {
			for name := range containerEnv(t, objs, w) {
				if !known(name) {
					t.Errorf("%s: %s sets %s, which rgw-nats does not read", dir, w, name)
				}
			}
		}
	}
	for name := range funcEnv(t, readFuncFile(t), built(t, "config")) {
		if !known(name) {
			t.Errorf("func.yaml sets %s, which rgw-nats does not read", name)
		}
	}
}

// TestManifestConfigLoads runs the service's own configuration loading on
// the environment each build gives the container, so values are checked as
// strictly as names: a bad mode, duration or subject template fails here.
// It also checks that the pod's termination grace period (timeoutSeconds)
// covers the queue-proxy drain plus SHUTDOWN_TIMEOUT.
func TestManifestConfigLoads(t *testing.T) {
	// The queue-proxy keeps draining for at least this long after the pod is
	// told to stop, before the container gets SIGTERM (Knative Serving).
	const queueProxyDrain = 30 * time.Second
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		for _, w := range workloads(objs) {
			t.Run(dir+"/"+w.name(), func(t *testing.T) {
				env := containerEnv(t, objs, w)
				for _, sb := range ofKind(objs, "SinkBinding") {
					if str(dig(sb, "spec", "subject", "name")) == w.name() {
						j, err := json.Marshal(dig(sb, "spec", "ceOverrides"))
						if err != nil {
							t.Fatal(err)
						}
						env["K_CE_OVERRIDES"] = string(j)
					}
				}
				// Every value is parsed into its type here (modes, subject
				// templates, K_CE_OVERRIDES), as the pod would at start.
				cfg, err := function.ConfigFromMap(env)
				if err != nil {
					t.Fatalf("rgw-nats would not start: %v", err)
				}
				if cfg.NATSURL == "" {
					t.Errorf("NATS_URL is not set: the pod would run an embedded NATS server of its own")
				}
				if cfg.Shutdown <= cfg.NATSAckTimeout+cfg.LuaTimeout {
					t.Errorf("SHUTDOWN_TIMEOUT %v does not outlast one request (NATS_ACK_TIMEOUT %v + LUA_TIMEOUT %v)", cfg.Shutdown, cfg.NATSAckTimeout, cfg.LuaTimeout)
				}
				timeout, ok := dig(w, "spec", "template", "spec", "timeoutSeconds").(int)
				if w.kind() == "Service" && !ok {
					t.Fatalf("no timeoutSeconds: the grace period would be the cluster default")
				}
				if grace := time.Duration(timeout) * time.Second; ok && grace < queueProxyDrain+cfg.Shutdown {
					t.Errorf("timeoutSeconds %d: SIGKILL could hit during shutdown (drain %v + SHUTDOWN_TIMEOUT %v)", timeout, queueProxyDrain, cfg.Shutdown)
				}
			})
		}
	}
}
