// Package knative holds no Go code of the service: it is the home of the
// Kubernetes and Knative manifests (a kustomize base, overlays and a
// component) and of the tests that validate them, func.yaml and the func
// scaffolding offline. Nothing may import it.
package knative
