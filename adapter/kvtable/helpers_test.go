package kvtable

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// cluster is three nats-servers in one JetStream cluster, in-process.
type cluster struct {
	servers []*server.Server
}

func runCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = testutil.FreePort(tb)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	c := &cluster{}
	for i := range n {
		opts := natsserver.DefaultTestOptions
		opts.Port = -1
		opts.ServerName = fmt.Sprintf("n%d", i+1)
		opts.JetStream = true
		opts.StoreDir = tb.TempDir()
		opts.Cluster = server.ClusterOpts{Name: "kvtable", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		s := natsserver.RunServer(&opts)
		tb.Cleanup(s.Shutdown)
		c.servers = append(c.servers, s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !c.hasMetaLeader() {
		if time.Now().After(deadline) {
			tb.Fatal("the cluster elected no JetStream meta leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func (c *cluster) hasMetaLeader() bool {
	for _, s := range c.servers {
		if s.Running() && s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// urls lists the client URLs of the running servers.
func (c *cluster) urls() string {
	var u []string
	for _, s := range c.servers {
		if s.Running() {
			u = append(u, s.ClientURL())
		}
	}
	return strings.Join(u, ",")
}

// streamLeader returns the server leading the stream of bucket.
func (c *cluster) streamLeader(bucket string) *server.Server {
	for _, s := range c.servers {
		if s.Running() && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "KV_"+bucket) {
			return s
		}
	}
	return nil
}

// connect opens a connection that reconnects quickly and forever, as the
// service's does, closed when the test ends.
func connect(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// newTable opens the table in bucket (created), waits for its load and
// closes it when the test ends.
func newTable(tb testing.TB, nc *nats.Conn, bucket string, opts ...Option) *Table {
	tb.Helper()
	t, err := New(nc, bucket, append([]Option{WithCreate(1), withRetryWait(50 * time.Millisecond), WithLogger(testutil.Logger(tb))}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { t.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.WaitLoaded(ctx); err != nil {
		tb.Fatal(err)
	}
	return t
}

// testTimeout replaces LUA_TIMEOUT: on a shared, loaded machine a call can be
// descheduled for longer than 100ms.
const testTimeout = 10 * time.Second

// newEngine loads src as script.lua over table.
func newEngine(tb testing.TB, src string, table lua.Table, opts ...lua.Option) *lua.Engine {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "script.lua")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	return loadEngine(tb, p, table, opts...)
}

// loadEngine loads the script, or the chain of scripts of a directory, at
// path over table.
func loadEngine(tb testing.TB, path string, table lua.Table, opts ...lua.Option) *lua.Engine {
	tb.Helper()
	e, err := lua.New(context.Background(), path, append([]lua.Option{lua.WithReload(0), lua.WithTimeout(testTimeout), lua.WithTable(table)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// newEvent is an upload event of object key in bucket.
func newEvent(id, bucket, key string) *event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("ceph:s3.default." + bucket)
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSubject(key)
	ev.SetExtension("bucket", bucket)
	ev.SetExtension("objectkey", key)
	return &ev
}

// waitFor polls cond for up to 30 seconds: after its server is shut down, a
// KV watcher is recreated once its heartbeats are missed (over 10 seconds),
// longer than testutil.WaitFor waits.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not in time", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// withRetryWait shortens the wait between set-up attempts.
func withRetryWait(d time.Duration) Option { return func(o *options) { o.retryWait = d } }
