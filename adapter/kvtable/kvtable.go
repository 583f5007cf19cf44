// Package kvtable keeps the RGW table of the Lua scripts (adapter/lua's
// Table) in a NATS JetStream key-value bucket, so that it is shared by every
// replica of the service and outlives them all (Knative scales to zero and
// back, and to several pods under load).
//
// Reads are served from a copy in memory that a KV watcher keeps current:
// they cost no round trip, and may lag another replica's write by the watch
// delay. Writes go to the bucket before they return, so an event is answered
// only after its script's writes are stored. Increments compare and set on
// the key's revision, retried on conflict: no count is ever lost. A write a
// script makes for an event is made once, however many processes run the
// script on that event within the bucket's duplicate window (see write.go):
// no count is made twice by a resend either. Values keep their Lua type
// through the bucket (see encodeValue).
//
// It builds on nats.go and its jetstream package and on adapter/lua's Table
// interface and limits. It must not import nats-server, the HTTP side or the
// pipeline: the caller hands it a connection (the process's one).
package kvtable

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
)

// Defaults.
const (
	// DefaultMaxAttempts bounds the compare-and-set attempts of one
	// increment that other processes keep beating to the key.
	DefaultMaxAttempts = 50
	// DefaultSetupTimeout bounds each request of finding or creating the
	// bucket and starting the watcher.
	DefaultSetupTimeout = 5 * time.Second
)

// maxValueSize caps the bucket's messages: a value of MaxTableEntrySize and
// its type tag, plus the headers of a compare-and-set or a delete.
const maxValueSize = 2 * lua.MaxTableEntrySize

// stripes serialise the increments of one process on one key (a key maps to
// one of them), so that they do not lose compare-and-set rounds to each other.
const stripes = 64

type options struct {
	create       bool
	replicas     int
	maxAttempts  int
	setupTimeout time.Duration
	log          *slog.Logger
	retryWait    time.Duration
}

// An Option configures a Table.
type Option func(*options)

// WithCreate creates the bucket when it does not exist, with that many
// replicas (1, or 3 or 5 on a cluster). An existing bucket is used as it is.
// Without it a missing bucket keeps the table from loading, and a warning
// says so.
func WithCreate(replicas int) Option {
	return func(o *options) { o.create, o.replicas = true, replicas }
}

// WithLogger sets the logger (default: none).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Table is a lua.Table in a NATS KV bucket. Get it from New; it is safe for
// concurrent use.
type Table struct {
	bucket string
	opts   options
	js     jetstream.JetStream
	kv     atomic.Pointer[jetstream.KeyValue] // nil until the bucket is found

	mu   sync.RWMutex
	m    map[string]entry
	live int    // entries of m that hold a value
	seen uint64 // highest revision the watcher delivered
	// Writes of this process under way, by key: the values sent (see
	// sawWrite).
	pending map[string][]string
	news    chan struct{} // closed when the watcher delivers, while waiters > 0
	waiters int
	// The watcher let a wait for a write time out, and delivered nothing
	// since: increments stop waiting for it.
	late atomic.Bool

	loaded   atomic.Bool
	loadedCh chan struct{}

	seed    maphash.Seed
	stripes [stripes]stripe

	stats struct {
		writes, conflicts, watches, duplicates atomic.Uint64
	}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// stripe serialises the increments of this process on the keys that map to
// it.
type stripe struct {
	lock chan struct{}
	// When another process last wrote a key of the stripe (Unix ns).
	foreign atomic.Int64
}

func (t *Table) stripe(key string) *stripe {
	return &t.stripes[maphash.String(t.seed, key)%stripes]
}

// entry is the local copy of one key. A nil v marks a key this process just
// deleted, until the watcher delivers the deletion: rev is then the revision
// the key had, so that only news from after it replaces the mark.
type entry struct {
	v   any
	rev uint64
}

var validBucket = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ValidBucket reports whether name can name a KV bucket: letters, digits,
// '-' and '_'.
func ValidBucket(name string) bool { return validBucket.MatchString(name) }

// New returns the table kept in bucket, reached over nc (which stays the
// caller's to close). It returns at once: finding (or creating) the bucket
// and loading it go on in the background, retried while NATS is away; Ready
// and WaitLoaded say when the table can serve. Until then every operation
// fails with lua.ErrTableUnavailable. Close stops it.
func New(nc *nats.Conn, bucket string, opts ...Option) (*Table, error) {
	if !ValidBucket(bucket) {
		return nil, fmt.Errorf("kvtable: bucket name %q: use letters, digits, - and _", bucket)
	}
	o := options{maxAttempts: DefaultMaxAttempts, setupTimeout: DefaultSetupTimeout, retryWait: time.Second, replicas: 1}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxAttempts <= 0 {
		o.maxAttempts = DefaultMaxAttempts
	}
	if o.setupTimeout <= 0 {
		o.setupTimeout = DefaultSetupTimeout
	}
	if o.replicas <= 0 {
		o.replicas = 1
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(o.setupTimeout))
	if err != nil {
		return nil, fmt.Errorf("kvtable: %w", err)
	}
	t := &Table{
		bucket:   bucket,
		opts:     o,
		js:       js,
		m:        make(map[string]entry),
		pending:  make(map[string][]string),
		news:     make(chan struct{}),
		loadedCh: make(chan struct{}),
		seed:     maphash.MakeSeed(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range t.stripes {
		t.stripes[i].lock = make(chan struct{}, 1)
	}
	go t.run()
	return t, nil
}

// Bucket is the name of the KV bucket.
func (t *Table) Bucket() string { return t.bucket }

// Ready reports whether the initial load of the table is done.
func (t *Table) Ready() bool { return t.loaded.Load() }

// WaitLoaded waits until the initial load is done, ctx ends or the table is
// closed.
func (t *Table) WaitLoaded(ctx context.Context) error {
	select {
	case <-t.loadedCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kvtable: waiting for bucket %q to load: %w", t.bucket, ctx.Err())
	case <-t.stop:
		return fmt.Errorf("kvtable: bucket %q: %w", t.bucket, errClosed)
	}
}

var errClosed = errors.New("table closed")

// Close stops the watcher. Operations fail afterwards; the connection stays
// open.
func (t *Table) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
	})
	return nil
}

// Stats counts what a Table did since New.
type Stats struct {
	Writes    uint64 // writes the bucket stored (puts, creates, updates, deletes)
	Conflicts uint64 // compare-and-set rounds an increment lost to another writer
	// Writes the bucket had already: made for the same event by a script
	// call of another process (or of this one, before a failure).
	Duplicates uint64
	Watches    uint64 // watchers started (1, plus one per recovery)
	Entries    int    // entries in the local copy
}

// Stats returns a snapshot of the counters.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	n := t.live
	t.mu.RUnlock()
	return Stats{Writes: t.stats.writes.Load(), Conflicts: t.stats.conflicts.Load(), Duplicates: t.stats.duplicates.Load(),
		Watches: t.stats.watches.Load(), Entries: n}
}

// run finds the bucket and watches it for the life of the Table, starting
// over (with back-off) whenever the watcher ends or set-up fails.
func (t *Table) run() {
	defer close(t.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-t.stop
		cancel()
	}()
	wait := t.opts.retryWait
	var lastErr string
	for {
		watched, err := t.watch(ctx)
		select {
		case <-t.stop:
			return
		default:
		}
		if watched {
			// A watcher ran: what follows is a new outage.
			lastErr, wait = "", t.opts.retryWait
		}
		if err.Error() != lastErr {
			// One line per distinct failure: a retry every second
			// during an outage must not flood the log.
			t.opts.log.Error("RGW table: NATS KV bucket unavailable; retrying", "bucket", t.bucket, "error", err)
			lastErr = err.Error()
		}
		select {
		case <-t.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

var errWatchEnded = errors.New("the watcher ended")

// watch runs one watcher until it ends (watched says whether it started).
// The first one loads the whole bucket; later ones resume after the last
// revision seen.
func (t *Table) watch(ctx context.Context) (watched bool, err error) {
	kv, err := t.bucketHandle(ctx)
	if err != nil {
		return false, err
	}
	t.kv.Store(&kv)
	var wopts []jetstream.WatchOpt
	resumed := t.loaded.Load()
	if resumed {
		t.mu.RLock()
		seen := t.seen
		t.mu.RUnlock()
		wopts = append(wopts, jetstream.ResumeFromRevision(seen+1))
	}
	// The watcher's context must outlive it: nats.go recreates the
	// consumer under it after a gap or a reconnect. Requests without a
	// deadline get the setup timeout (jetstream's default timeout).
	w, err := kv.WatchAll(ctx, wopts...)
	if err != nil {
		return false, fmt.Errorf("watch bucket %q: %w", t.bucket, err)
	}
	defer w.Stop()
	t.stats.watches.Add(1)
	for {
		select {
		case <-t.stop:
			return true, errClosed
		case e, ok := <-w.Updates():
			if !ok {
				return true, errWatchEnded
			}
			if e == nil {
				if !resumed && t.loaded.CompareAndSwap(false, true) {
					close(t.loadedCh)
					t.opts.log.Info("RGW table loaded from NATS KV", "bucket", t.bucket, "entries", t.Stats().Entries)
				}
				continue
			}
			t.applyWatched(e)
		}
	}
}

// bucketHandle finds the bucket, or creates it when allowed.
func (t *Table) bucketHandle(ctx context.Context) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.setupTimeout)
	defer cancel()
	kv, err := t.js.KeyValue(ctx, t.bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("look up bucket %q: %w", t.bucket, err)
	}
	if !t.opts.create {
		return nil, fmt.Errorf("bucket %q does not exist (create it, or allow its creation)", t.bucket)
	}
	kv, err = t.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:       t.bucket,
		Description:  "RGW table of the rgw-nats Lua scripts",
		History:      1,
		MaxValueSize: maxValueSize,
		Replicas:     t.opts.replicas,
		Storage:      jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Another replica created it in between.
		kv, err = t.js.KeyValue(ctx, t.bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %q: %w", t.bucket, err)
	}
	t.opts.log.Info("RGW table: NATS KV bucket created", "bucket", t.bucket, "replicas", t.opts.replicas)
	return kv, nil
}

// applyWatched takes one entry the watcher delivered into the local copy.
func (t *Table) applyWatched(e jetstream.KeyValueEntry) {
	key := decodeKey(e.Key())
	rev := e.Revision()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = max(t.seen, rev)
	t.late.Store(false)
	if t.waiters > 0 {
		close(t.news)
		t.news = make(chan struct{})
	}
	if e.Operation() == jetstream.KeyValuePut {
		if cur, ok := t.m[key]; !ok || cur.rev < rev {
			t.sawWrite(key, string(e.Value()))
		}
		t.storeLocked(key, decodeValue(e.Value()), rev)
		return
	}
	cur, ok := t.m[key]
	if ok && cur.rev >= rev {
		return
	}
	t.sawWrite(key, deleted)
	if ok && cur.v != nil {
		t.live--
	}
	delete(t.m, key)
}

// deleted stands for a delete among the pending values.
const deleted = "\x00deleted"

// sawWrite notes a write of key that the local copy did not know of: another
// process's, unless this process is writing the same value (the echo of a
// write can come before its acknowledgement). t.mu is held.
func (t *Table) sawWrite(key, value string) {
	for _, v := range t.pending[key] {
		if v == value {
			return
		}
	}
	t.stripe(key).foreign.Store(time.Now().UnixNano())
}

// writing notes a write of value to key under way, until the returned func
// is called.
func (t *Table) writing(key, value string) (done func()) {
	t.mu.Lock()
	t.pending[key] = append(t.pending[key], value)
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		vals := t.pending[key]
		for i, v := range vals {
			if v == value {
				vals = append(vals[:i], vals[i+1:]...)
				break
			}
		}
		if len(vals) == 0 {
			delete(t.pending, key)
		} else {
			t.pending[key] = vals
		}
	}
}

// store puts what the bucket holds at rev into the local copy, unless the
// copy knows a later revision already.
func (t *Table) store(key string, v any, rev uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.storeLocked(key, v, rev)
}

func (t *Table) storeLocked(key string, v any, rev uint64) {
	cur, ok := t.m[key]
	if ok && cur.rev >= rev {
		return
	}
	if !ok || cur.v == nil {
		t.live++
	}
	t.m[key] = entry{v: v, rev: rev}
}

// local returns the copy's entry of key.
func (t *Table) local(key string) (v any, rev uint64, n int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.m[key]
	return e.v, e.rev, t.live
}

// handle returns the bucket once the table is loaded.
func (t *Table) handle(key string) (jetstream.KeyValue, error) {
	select {
	case <-t.stop:
		return nil, &lua.TableError{Key: key, Err: lua.ErrTableUnavailable, Reason: "the table is closed"}
	default:
	}
	if !t.loaded.Load() {
		return nil, &lua.TableError{Key: key, Err: lua.ErrTableUnavailable,
			Reason: fmt.Sprintf("NATS KV bucket %q is not loaded yet", t.bucket)}
	}
	return *t.kv.Load(), nil
}

func (t *Table) unavailable(key string, err error) error {
	return &lua.TableError{Key: key, Err: lua.ErrTableUnavailable,
		Reason: fmt.Sprintf("NATS KV bucket %q", t.bucket), Cause: err}
}

// Get returns the value of key from the local copy.
func (t *Table) Get(key string) (any, error) {
	if _, err := t.handle(key); err != nil {
		return nil, err
	}
	v, _, _ := t.local(key)
	return v, nil
}

// Snapshot returns a copy of the local copy's entries.
func (t *Table) Snapshot() (map[string]any, error) {
	if _, err := t.handle(""); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]any, t.live)
	for k, e := range t.m {
		if e.v != nil {
			out[k] = e.v
		}
	}
	return out, nil
}

// Set stores value under key in the bucket (the last writer wins).
func (t *Table) Set(ctx context.Context, key string, value any) error {
	_, err := t.handle(key)
	if err != nil {
		return err
	}
	cur, _, n := t.local(key)
	if err := lua.CheckTableSet(key, value, n, cur != nil); err != nil {
		return err
	}
	data := encodeValue(value)
	done := t.writing(key, string(data))
	defer done()
	rev, dup, err := t.write(ctx, encodeKey(key), data, false, false, 0, lua.WriteID(ctx))
	if err != nil {
		return t.unavailable(key, err)
	}
	if dup {
		// Made for this event before, maybe followed by other writes:
		// the watcher brings what the key holds.
		t.stats.duplicates.Add(1)
		return nil
	}
	t.stats.writes.Add(1)
	t.store(key, value, rev)
	return nil
}

// Delete removes key from the bucket. A key the local copy does not hold is
// left alone when the delete is made for no event: deleting it would add a
// delete marker to the bucket for nothing, and a write of it by another
// replica that this one has not seen yet is as good as one made just after
// the delete. A delete made for an event is always written: its marker
// records the write's identity, without which a resend of the event to a
// replica that still sees the key would delete it again, after later writes.
func (t *Table) Delete(ctx context.Context, key string) error {
	_, err := t.handle(key)
	if err != nil {
		return err
	}
	id := lua.WriteID(ctx)
	cur, rev, _ := t.local(key)
	if cur == nil && id == "" {
		return nil
	}
	done := t.writing(key, deleted)
	defer done()
	_, dup, err := t.write(ctx, encodeKey(key), nil, true, false, 0, id)
	if err != nil {
		return t.unavailable(key, err)
	}
	if dup {
		t.stats.duplicates.Add(1)
		return nil
	}
	t.stats.writes.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	// Unless the watcher has brought news of the key meanwhile, mark it
	// deleted until the watcher delivers the deletion.
	if e, ok := t.m[key]; ok && e.rev == rev && e.v != nil {
		t.m[key] = entry{rev: rev}
		t.live--
	}
	return nil
}

// Add adds delta to the number under key: compare-and-set on the key's
// revision, starting from the local copy and re-reading the key from the
// bucket after each conflict.
func (t *Table) Add(ctx context.Context, key string, delta float64) (float64, error) {
	kv, err := t.handle(key)
	if err != nil {
		return 0, err
	}
	sp := t.stripe(key)
	lock := sp.lock
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return 0, t.unavailable(key, ctx.Err())
	}
	defer func() { <-lock }()

	k := encodeKey(key)
	id := lua.WriteID(ctx)
	cur, rev, n := t.local(key)
	for attempt := 1; ; attempt++ {
		if err := lua.CheckTableAdd(key, cur, n); err != nil {
			return 0, err
		}
		num, _ := cur.(float64)
		next := num + delta
		var newRev uint64
		var dup bool
		data := encodeValue(next)
		done := t.writing(key, string(data))
		start := time.Now()
		if cur == nil {
			newRev, dup, err = t.create(ctx, k, data, id)
		} else {
			newRev, dup, err = t.write(ctx, k, data, false, true, rev, id)
		}
		done()
		if err == nil && dup {
			t.stats.duplicates.Add(1)
			return t.firstValue(ctx, kv, key, k, newRev), nil
		}
		if err == nil {
			t.stats.writes.Add(1)
			t.store(key, next, newRev)
			// Hold the key until the watcher delivers this write: the
			// next increment here then starts when other processes
			// learn of the write too, instead of always beating them to
			// the next revision.
			t.waitWatched(ctx, newRev)
			// A process that keeps winning would keep the others
			// losing (it learns of its write first): while others
			// write the key too, let the next round go to them, by
			// waiting (about a round trip) for their write.
			if time.Since(time.Unix(0, sp.foreign.Load())) < contended {
				t.waitNewer(ctx, key, newRev, 2*time.Since(start), false)
			}
			return next, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, t.unavailable(key, err)
		}
		t.stats.conflicts.Add(1)
		if attempt == t.opts.maxAttempts {
			return 0, t.unavailable(key, fmt.Errorf("%d increments in a row lost to concurrent writers", attempt))
		}
		// The write that beat this one reaches the watcher about when
		// its writer gets the ack: waiting for it instead of asking for
		// the key (two legs) gives this process an even chance at the
		// next round, where re-reading would lose it to a writer with
		// increments queued.
		if v, r, ok := t.waitNewer(ctx, key, rev, watchWait, true); ok {
			cur, rev = v, r
			_, _, n = t.local(key)
			continue
		}
		e, err := kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			cur, rev = nil, 0
		case err != nil:
			return 0, t.unavailable(key, err)
		default:
			cur, rev = decodeValue(e.Value()), e.Revision()
			t.store(key, cur, rev)
		}
		_, _, n = t.local(key)
	}
}

// watchWait bounds how long an increment that lost a round waits for the
// watcher to bring the winning write, before it reads the key instead.
const watchWait = 25 * time.Millisecond

// contended is how long after another process wrote a key an increment that
// won a round yields before the next one.
const contended = 100 * time.Millisecond

// waitWatched waits until the watcher has delivered revision rev, for at most
// watchWait, unless the watcher is late.
func (t *Table) waitWatched(ctx context.Context, rev uint64) {
	if t.late.Load() {
		return
	}
	if !t.await(ctx, watchWait, func() bool { return t.seen >= rev }) && ctx.Err() == nil {
		t.late.Store(true)
	}
}

// waitNewer waits until the local copy holds key at a revision after rev;
// false when the watcher brought nothing within timeout (noted as the
// watcher being late when it should have).
func (t *Table) waitNewer(ctx context.Context, key string, rev uint64, timeout time.Duration, should bool) (any, uint64, bool) {
	if should && t.late.Load() {
		return nil, 0, false
	}
	var got entry
	ok := t.await(ctx, timeout, func() bool {
		e, ok := t.m[key]
		got = e
		return ok && e.rev > rev
	})
	if !ok && should && ctx.Err() == nil {
		t.late.Store(true)
	}
	return got.v, got.rev, ok
}

// await waits, for at most timeout, until ready (called with t.mu held)
// reports true, checking again after each watcher delivery; false when it
// did not in time.
func (t *Table) await(ctx context.Context, timeout time.Duration, ready func() bool) bool {
	var timer *time.Timer
	for {
		t.mu.Lock()
		if ready() {
			t.mu.Unlock()
			return true
		}
		t.waiters++
		news := t.news
		t.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		var expired bool
		select {
		case <-news:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			expired = true
		}
		t.mu.Lock()
		t.waiters--
		t.mu.Unlock()
		if expired {
			return false
		}
	}
}

var _ lua.Table = (*Table)(nil)
