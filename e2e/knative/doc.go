// Package knativee2e checks rgw-nats' Knative promises against a real
// single-node Kubernetes with Knative Serving and Eventing: the lab of
// scripts/knative-lab.sh. Each test applies a shipped kustomization
// (knative/base or an overlay, with the image replaced by the one the lab
// built from this work tree) into a namespace of its own, runs a real
// nats-server on the lab's host address for the pods to publish to, sends
// through the lab's ingress on 127.0.0.1 (Host header) or has a real RGW of
// scripts/ceph-lab.sh push there, and counts what reached NATS.
//
// Run: KNATIVE_LAB=DIR go test -v -timeout 60m ./e2e/knative/ (-run
// Eventing for the Eventing tests); go test's default 10 minutes are too
// short for a full run, which says so at once instead of timing out. Without KNATIVE_LAB every test skips with one line.
// KNATIVE_LAB_SCRIPT names the lab script when it is not this repository's
// scripts/knative-lab.sh; KNATIVE_E2E_FIGURES names the file the measured
// figures are appended to (default $TMPDIR/ke2e-figures.txt: the lab's
// start wipes DIR);
// KNATIVE_E2E_BURST_RESEND sets the share of notifications the burst sends
// twice (default 0.05; 0 showed the KV table exact without resends);
// KNATIVE_E2E_NS_PREFIX starts the names of the tests' namespaces (default
// ke2e-); KNATIVE_E2E_KEEP=1 keeps a failed test's namespace.
//
// Kubernetes is driven through the lab's kubectl (os/exec): this package
// links no Kubernetes client, so the root module never compiles one. It
// holds tests only: nothing may import it, and it imports nothing of the
// repository but internal/testutil and the embedded fixtures.
package knativee2e
