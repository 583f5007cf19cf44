package knative_test

import (
	"slices"
	"testing"
)

// TestOIDCAudience: in every build, a Trigger that delivers to rgw-nats
// names in subscriber.audience exactly the AUTH_OIDC_AUDIENCE rgw-nats
// accepts (a Knative Service publishes no audience, so without it Knative
// sends no token and an OIDC-configured rgw-nats refuses every delivery),
// and names none when rgw-nats does not check tokens. The eventing-oidc
// overlay is such a build.
func TestOIDCAudience(t *testing.T) {
	checked := 0
	dirs := kustomizations(t)
	if !slices.Contains(dirs, "overlays/eventing-oidc") {
		t.Fatalf("no overlays/eventing-oidc among %v", dirs)
	}
	for _, dir := range dirs {
		objs := built(t, dir)
		for _, w := range workloads(objs) {
			want := containerEnv(t, objs, w)["AUTH_OIDC_AUDIENCE"]
			for _, tr := range ofKind(objs, "Trigger") {
				sub := dig(tr, "spec", "subscriber")
				if str(dig(sub, "ref", "kind")) != w.kind() || str(dig(sub, "ref", "name")) != w.name() {
					continue
				}
				checked++
				if got := str(dig(sub, "audience")); got != want {
					t.Errorf("%s: %s delivers to %s with audience %q, which accepts %q", dir, tr, w, got, want)
				}
				if dir == "overlays/eventing-oidc" && want == "" {
					t.Errorf("%s: rgw-nats is given no AUTH_OIDC_AUDIENCE", dir)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Trigger delivers to rgw-nats in any build")
	}
}
