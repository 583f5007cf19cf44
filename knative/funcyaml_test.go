package knative_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

const funcYAML = repoRoot + "/func.yaml"

// funcSchema compiles knative/func's schema for func.yaml, with format
// assertions on (draft-04 checks "date-time" only when asked).
func funcSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("schemas/func_yaml-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("func_yaml-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("func_yaml-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlToJSONValue decodes YAML into the value jsonschema validates: the same
// types encoding/json would produce from the equivalent JSON.
func yamlToJSONValue(b []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

func TestFuncYAMLValidates(t *testing.T) {
	v, err := yamlToJSONValue(mustRead(t, funcYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := funcSchema(t).Validate(v); err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
}

// TestFuncSchemaRejectsMistakes proves the validation above can fail.
func TestFuncSchemaRejectsMistakes(t *testing.T) {
	good := string(mustRead(t, funcYAML))
	s := funcSchema(t)
	cases := []struct{ name, old, new string }{
		{"unknown invoke", "invoke: http", "invoke: grpc"},
		{"unquoted specVersion", "specVersion: 0.36.0", "specVersion: 0.36"},
		{"bad name", "name: rgw-nats", "name: RGW_Nats"},
		{"misplaced key", "deploy:\n", "deploy:\n  serviceAccount: x\n"},
		{"duration as string", "run:\n", "run:\n  startTimeout: 30s\n"},
		{"not a timestamp", `created: "2026-11-24T21:55:48Z"`, `created: "yesterday"`},
		{"negative min scale", "min: 0", "min: -1"},
		{"volume with two sources", "  - configMap: rgw-nats-lua\n", "  - configMap: rgw-nats-lua\n    secret: rgw-nats-nats\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			broken := strings.Replace(good, c.old, c.new, 1)
			if broken == good {
				t.Fatalf("%q not found in func.yaml", c.old)
			}
			v, err := yamlToJSONValue([]byte(broken))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(v); err == nil {
				t.Fatal("the schema accepted it")
			}
		})
	}
}

// funcFile is the part of func.yaml the consistency checks read.
type funcFile struct {
	Run struct {
		Envs []struct {
			Name  *string
			Value string
		}
		Volumes []struct {
			Secret    string
			ConfigMap string `yaml:"configMap"`
			Path      string
		}
	}
	Deploy struct {
		HealthEndpoints struct{ Liveness, Readiness string } `yaml:"healthEndpoints"`
		Annotations     map[string]string
		Options         struct {
			Scale struct {
				Min, Max int
				Metric   string
				Target   float64
			}
			Resources struct {
				Requests struct{ CPU, Memory string }
				Limits   struct {
					CPU, Memory string
					Concurrency int
				}
			}
		}
	}
}

func readFuncFile(t *testing.T) funcFile {
	t.Helper()
	var f funcFile
	dec := yaml.NewDecoder(bytes.NewReader(mustRead(t, funcYAML)))
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
	return f
}

// funcRef is one {{ secret:NAME[:KEY] }} or {{ configMap:NAME[:KEY] }}.
type funcRef struct{ Kind, Name, Key string }

var funcRefPattern = regexp.MustCompile(`^\{\{\s*(secret|configMap):([-a-z0-9.]+)(?::([-._a-zA-Z0-9]+))?\s*\}\}$`)

func parseFuncRef(v string) (funcRef, bool) {
	m := funcRefPattern.FindStringSubmatch(v)
	if m == nil {
		return funcRef{}, false
	}
	kind := "Secret"
	if m[1] == "configMap" {
		kind = "ConfigMap"
	}
	return funcRef{kind, m[2], m[3]}, true
}

// funcEnv resolves func.yaml's environment against the objects of
// knative/config, the way func deploy turns it into env and envFrom: the
// names it sets and, per name, where its value comes from.
func funcEnv(t *testing.T, f funcFile, config []object) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range f.Run.Envs {
		ref, isRef := parseFuncRef(e.Value)
		if strings.HasPrefix(strings.TrimSpace(e.Value), "{{") && !isRef {
			t.Errorf("func.yaml: env value %q is no secret/configMap reference we can check", e.Value)
			continue
		}
		var data map[string]string
		if isRef {
			o := find(config, ref.Kind, ref.Name)
			if o == nil {
				t.Errorf("func.yaml refers to %s %s, which knative/config does not create (func deploy would fail)", ref.Kind, ref.Name)
				continue
			}
			data = configData(t, o)
		}
		switch {
		case e.Name == nil && isRef && ref.Key == "":
			for k, v := range data {
				env[k] = v
			}
		case e.Name != nil && isRef && ref.Key != "":
			v, ok := data[ref.Key]
			if !ok {
				t.Errorf("func.yaml: %s %s has no key %s", ref.Kind, ref.Name, ref.Key)
			}
			env[*e.Name] = v
		case e.Name != nil && !isRef:
			env[*e.Name] = e.Value
		default:
			t.Errorf("func.yaml: env entry %+v is not one func deploy accepts", e)
		}
	}
	return env
}

// TestFuncYAMLMatchesManifests checks that the two ways to deploy give the
// same service: func.yaml's references resolve to what knative/config
// creates, and its probes, scaling, resources and environment equal the
// Knative Service in knative/base.
func TestFuncYAMLMatchesManifests(t *testing.T) {
	f := readFuncFile(t)
	config := built(t, "config")
	ksvc := find(built(t, "base"), "Service", "rgw-nats")
	if ksvc == nil {
		t.Fatal("knative/base has no Service rgw-nats")
	}
	container := asMap(list(dig(ksvc, "spec", "template", "spec", "containers"))[0])
	annotations := asMap(dig(ksvc, "spec", "template", "metadata", "annotations"))

	if got, want := f.Deploy.HealthEndpoints.Readiness, str(dig(container, "readinessProbe", "httpGet", "path")); got != want || got == "" {
		t.Errorf("readiness: func.yaml %q, Service %q", got, want)
	}
	if got, want := f.Deploy.HealthEndpoints.Liveness, str(dig(container, "livenessProbe", "httpGet", "path")); got != want || got == "" {
		t.Errorf("liveness: func.yaml %q, Service %q", got, want)
	}

	scale := f.Deploy.Options.Scale
	for key, got := range map[string]string{
		"min-scale": strconv.Itoa(scale.Min),
		"max-scale": strconv.Itoa(scale.Max),
		"metric":    scale.Metric,
		"target":    strconv.FormatFloat(scale.Target, 'f', -1, 64),
	} {
		if want := str(annotations["autoscaling.knative.dev/"+key]); got != want {
			t.Errorf("autoscaling %s: func.yaml %q, Service %q", key, got, want)
		}
	}
	if scale.Min != 0 {
		t.Errorf("func.yaml: scale.min %d, want 0 (scale to zero)", scale.Min)
	}
	for k, v := range f.Deploy.Annotations {
		if want := str(annotations[k]); v != want {
			t.Errorf("annotation %s: func.yaml %q, Service %q", k, v, want)
		}
	}
	if got, want := f.Deploy.Options.Resources.Limits.Concurrency, dig(ksvc, "spec", "template", "spec", "containerConcurrency"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("concurrency: func.yaml %v, Service containerConcurrency %v", got, want)
	}
	res := f.Deploy.Options.Resources
	for field, got := range map[string]string{
		"requests.cpu": res.Requests.CPU, "requests.memory": res.Requests.Memory,
		"limits.cpu": res.Limits.CPU, "limits.memory": res.Limits.Memory,
	} {
		part, name, _ := strings.Cut(field, ".")
		if want := str(dig(container, "resources", part, name)); got != want {
			t.Errorf("resources %s: func.yaml %q, Service %q", field, got, want)
		}
	}

	// Same environment, volumes and mount points.
	fromFunc := funcEnv(t, f, config)
	fromKsvc := containerEnv(t, built(t, "base"), ksvc)
	for k, v := range fromKsvc {
		if got, ok := fromFunc[k]; !ok || got != v {
			t.Errorf("env %s: Service %q, func.yaml %q (set: %v)", k, v, got, ok)
		}
	}
	for k := range fromFunc {
		if _, ok := fromKsvc[k]; !ok {
			t.Errorf("env %s set by func.yaml only", k)
		}
	}
	mounts := volumeMounts(ksvc)
	for _, v := range f.Run.Volumes {
		kind, name := "ConfigMap", v.ConfigMap
		if v.Secret != "" {
			kind, name = "Secret", v.Secret
		}
		if find(config, kind, name) == nil {
			t.Errorf("func.yaml mounts %s %s, which knative/config does not create", kind, name)
		}
		if got := mounts[kind+"/"+name]; got != v.Path {
			t.Errorf("%s %s: func.yaml mounts it at %q, the Service at %q", kind, name, v.Path, got)
		}
	}
	if len(f.Run.Volumes) != len(mounts) {
		t.Errorf("func.yaml has %d volumes, the Service %d", len(f.Run.Volumes), len(mounts))
	}
}

// volumeMounts maps "Kind/name" of each ConfigMap or Secret volume of the
// Service's container to its mount path.
func volumeMounts(ksvc object) map[string]string {
	spec := dig(ksvc, "spec", "template", "spec")
	byVolume := map[string]string{}
	for _, v := range list(dig(spec, "volumes")) {
		vm := asMap(v)
		switch {
		case dig(vm, "configMap") != nil:
			byVolume[str(vm["name"])] = "ConfigMap/" + str(dig(vm, "configMap", "name"))
		case dig(vm, "secret") != nil:
			byVolume[str(vm["name"])] = "Secret/" + str(dig(vm, "secret", "secretName"))
		}
	}
	out := map[string]string{}
	for _, c := range list(dig(spec, "containers")) {
		for _, m := range list(dig(c, "volumeMounts")) {
			if src, ok := byVolume[str(dig(m, "name"))]; ok {
				out[src] = str(dig(m, "mountPath"))
			}
		}
	}
	return out
}

// TestLuaScriptPointsIntoLuaVolume checks, in every build, that LUA_SCRIPT
// names the directory (or a file in it) where the Lua ConfigMap is mounted,
// and that the ConfigMap holds at least one script.
func TestLuaScriptPointsIntoLuaVolume(t *testing.T) {
	for _, dir := range kustomizations(t) {
		objs := built(t, dir)
		for _, ksvc := range ofKind(objs, "Service") {
			env := containerEnv(t, objs, ksvc)
			script, ok := env["LUA_SCRIPT"]
			if !ok {
				continue
			}
			mount := volumeMounts(ksvc)["ConfigMap/rgw-nats-lua"]
			if mount == "" || (script != mount && path.Dir(script) != mount) {
				t.Errorf("%s: LUA_SCRIPT=%s is not in the Lua ConfigMap's mount %q", dir, script, mount)
			}
			lua := find(objs, "ConfigMap", "rgw-nats-lua")
			if lua == nil {
				t.Fatalf("%s: no ConfigMap rgw-nats-lua", dir)
			}
			n := 0
			for k := range configData(t, lua) {
				if filepath.Ext(k) == ".lua" {
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s: ConfigMap rgw-nats-lua holds no .lua file", dir)
			}
		}
	}
}
