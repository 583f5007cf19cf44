// Package crictl only pins cri-tools' crictl as a tool of this nested
// module: the Knative lab (scripts/knative-lab.sh) uses it to remove pod
// sandboxes through CRI on stop, so their network namespaces and mounts go.
package crictl
