package knative_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/knative/internal/tooling"
)

// schemaLocation makes kubeconform read only the schemas copied into this
// directory: with no other location it never touches the network.
const schemaLocation = "schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json"

type kubeconformSummary struct {
	Valid, Invalid, Errors, Skipped int
}

// kubeconform validates the manifests in files (stdin when files is empty)
// in strict mode and returns its summary and human-readable output.
func kubeconform(t *testing.T, stdin []byte, files ...string) (kubeconformSummary, string, error) {
	t.Helper()
	args := append([]string{"-strict", "-summary", "-output", "json", "-schema-location", schemaLocation}, files...)
	cmd := exec.Command(tool(t, tooling.Kubeconform), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		Resources []struct {
			Filename, Kind, Name, Status, Msg string
		}
		Summary kubeconformSummary
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("kubeconform output is not JSON (%v): %s\n%s", err, stdout.String(), stderr.String())
	}
	var report strings.Builder
	for _, r := range out.Resources {
		fmt.Fprintf(&report, "%s %s/%s: %s %s\n", r.Filename, r.Kind, r.Name, r.Status, r.Msg)
	}
	report.WriteString(stderr.String())
	return out.Summary, report.String(), runErr
}

func TestManifestFilesValidateStrict(t *testing.T) {
	files := manifestFiles(t)
	want := 0
	for _, f := range files {
		objs, err := decodeYAMLStream(mustRead(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want += len(objs)
	}
	sum, report, err := kubeconform(t, nil, files...)
	if err != nil || sum.Valid != want || sum.Invalid+sum.Errors+sum.Skipped != 0 {
		t.Fatalf("kubeconform: %v; %d of %d resources valid\n%s", err, sum.Valid, want, report)
	}
	t.Logf("%d resources in %d files valid", sum.Valid, len(files))
}

func TestKustomizeBuildsValidateStrict(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			out := kustomizeBuild(t, dir)
			objs := built(t, dir)
			sum, report, err := kubeconform(t, out)
			if err != nil || sum.Valid != len(objs) || sum.Invalid+sum.Errors+sum.Skipped != 0 {
				t.Fatalf("kubeconform: %v; %d of %d resources valid\n%s", err, sum.Valid, len(objs), report)
			}
		})
	}
}

// TestKubeconformRejectsMistakes proves the validation above can fail: each
// case is a real manifest of ours with one typical mistake.
func TestKubeconformRejectsMistakes(t *testing.T) {
	service := string(mustRead(t, "base/service.yaml"))
	kafka := string(mustRead(t, "overlays/xray-kafka/kafkasource.yaml"))
	alerts := string(mustRead(t, "grafana/rgw-nats-alerts.yaml"))
	cases := []struct {
		name, manifest, old, new string
	}{
		{"misspelt container field", service, "envFrom:", "envfrom:"},
		{"misspelt metadata", service, "  labels:\n    app.kubernetes.io/name", "  lables:\n    app.kubernetes.io/name"},
		{"string where integer", service, "containerConcurrency: 100", "containerConcurrency: lots"},
		{"duplicate key", service, "  timeoutSeconds: 60", "  timeoutSeconds: 60\n      timeoutSeconds: 61"},
		{"KafkaSource topic instead of topics", kafka, "  topics:\n  - xray-images", "  topic: xray-images"},
		{"unknown kind", service, "kind: Service", "kind: Servic"},
		{"PrometheusRule expression instead of expr", alerts, "          expr: max by", "          expression: max by"},
		{"PrometheusRule duration that is not one", alerts, "for: 2m", "for: two minutes"},
		{"PrometheusRule rules outside a group", alerts, "    - name: rgw-nats\n      rules:", "    - rules:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			broken := strings.Replace(c.manifest, c.old, c.new, 1)
			if broken == c.manifest {
				t.Fatalf("%q not found in the manifest", c.old)
			}
			sum, report, err := kubeconform(t, []byte(broken))
			if err == nil || sum.Valid != 0 {
				t.Fatalf("kubeconform accepted it: %+v\n%s", sum, report)
			}
		})
	}
}
