// Package coredns only pins CoreDNS as a tool of this nested module, so the
// Knative lab (scripts/knative-lab.sh) can build it as the cluster DNS with
// `go build github.com/coredns/coredns`.
package coredns
