// Package k8s is the nested module that builds the Knative lab's Kubernetes
// binaries (v1.34.x) from the k8s.io/kubernetes module. Each cmd/ main only
// calls the upstream command constructor; the lab script stamps the version.
// It lives outside the root module so the root's go vet/test never compile
// Kubernetes.
package k8s
