// Package e2e is the end-to-end test of rgw-nats against the things users
// run: a real Ceph RGW (a single-node cluster started by scripts/ceph-lab.sh)
// pushes bucket notifications to the built rgw-nats binary, which publishes
// them to a real nats-server. Topics, notifications and S3 operations go
// through awscli, as an operator would do them.
//
// It holds tests only: nothing may import it, and it imports nothing of the
// repository but the embedded fixtures (samples/events).
package e2e
