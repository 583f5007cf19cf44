package knative_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rgw-nats/rgw-nats/knative/internal/tooling"
)

// repoRoot is the repository root seen from this package's directory, where
// `go test` runs the tests.
const repoRoot = ".."

// object is one decoded Kubernetes resource.
type object map[string]any

func (o object) kind() string       { s, _ := o["kind"].(string); return s }
func (o object) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o object) name() string       { s, _ := dig(o, "metadata", "name").(string); return s }
func (o object) String() string     { return o.kind() + "/" + o.name() }

// dig walks nested maps; it returns nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(object)
		if !ok {
			mm, ok2 := v.(map[string]any)
			if !ok2 {
				return nil
			}
			m = mm
		}
		v = m[k]
	}
	return v
}

func list(v any) []any   { l, _ := v.([]any); return l }
func str(v any) string   { s, _ := v.(string); return s }
func asMap(v any) object { m, _ := v.(map[string]any); return m }
func decodeYAMLStream(b []byte) ([]object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []object
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
}

// tool returns the pinned executable, failing the test when it cannot be
// built: the manifests are not validated without it.
func tool(t *testing.T, tl tooling.Tool) string {
	t.Helper()
	p, err := tl.Path()
	if err != nil {
		t.Fatalf("%s is needed to validate the manifests: %v", tl.Name(), err)
	}
	return p
}

// kustomizations lists every directory under knative/ holding a buildable
// kustomization (components are built as part of the overlays using them).
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k struct{ Kind string }
		if err := yaml.Unmarshal(b, &k); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if k.Kind != "Component" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dirs)
	for _, want := range []string{"config", "base", "overlays/eventing", "overlays/eventing-oidc", "overlays/sequence", "overlays/uploads", "overlays/xray-kafka", "overlays/xray-push"} {
		if !slices.Contains(dirs, filepath.FromSlash(want)) {
			t.Fatalf("kustomization %s not found (found %v)", want, dirs)
		}
	}
	return dirs
}

var builds sync.Map // dir -> buildResult

type buildResult struct {
	yaml []byte
	err  error
}

// kustomizeBuild returns `kustomize build dir`, built once per test binary.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	if r, ok := builds.Load(dir); ok {
		r := r.(buildResult)
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.yaml
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tool(t, tooling.Kustomize), "build", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := buildResult{yaml: stdout.Bytes()}
	if err != nil {
		r.err = fmt.Errorf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	builds.Store(dir, r)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.yaml
}

// built decodes the output of `kustomize build dir`.
func built(t *testing.T, dir string) []object {
	t.Helper()
	objs, err := decodeYAMLStream(kustomizeBuild(t, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: output is not YAML: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("kustomize build %s produced nothing", dir)
	}
	return objs
}

// find returns the object of that kind and name, or nil.
func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

// ofKind returns the objects of one kind.
func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// manifestFiles lists the plain resource files under knative/: every YAML
// file that is not a kustomization and not generator input.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "schemas" || d.Name() == "internal") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && d.Name() != "kustomization.yaml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("only %d manifest files found: %v", len(files), files)
	}
	return files
}

// configData returns the key/value pairs of a ConfigMap or Secret in a
// build (Secret data decoded from base64).
func configData(t *testing.T, o object) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range asMap(o["data"]) {
		s := str(v)
		if o.kind() == "Secret" {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("%s key %s: %v", o, k, err)
			}
			s = string(b)
		}
		out[k] = s
	}
	for k, v := range asMap(o["stringData"]) {
		out[k] = str(v)
	}
	return out
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
