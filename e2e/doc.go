// Package e2e is the end-to-end test of rgw-nats against the things users
// run: a real Ceph RGW (a single-node cluster started by scripts/ceph-lab.sh)
// pushes bucket notifications to the built rgw-nats binary, which publishes
// them to a real nats-server. Topics, notifications and S3 operations go
// through awscli, as an operator would do them.
//
// Variables: E2E_CEPH=tentacle runs it against Ceph Tentacle (scripts/ceph-lab.sh
// --release tentacle; Pacific, the default, is what CI runs), expecting that
// release's behaviour where it differs; E2E_SIGTERM=1 stops rgw-nats with
// SIGTERM in the restart scenario (SIGKILL otherwise); E2E_CLOSED_PORT=1 restarts it on a plain
// port instead of a socket the test holds (a Pacific queue stall is then
// reported, not failed); E2E_KEEPALIVE=1 lets RGW keep its connections to
// the restarted adapter (RGW_CLOSE_CONNECTIONS=false); E2E_DEBUG_RGW=N sets
// RGW's log level;
// E2E_KEEP_DIR=DIR keeps RGW's and rgw-nats' logs of the restart scenario
// there; E2E_CAPTURE_DIR=DIR writes the live records, to refresh fixtures.
//
// It holds tests only: nothing may import it, and it imports nothing of the
// repository but the embedded fixtures (samples/events).
package e2e
