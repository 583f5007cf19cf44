// Command kubelet runs Kubernetes' kubelet for the Knative lab (scripts/knative-lab.sh).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	// NewKubeletCommand panics on a nil context.
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
