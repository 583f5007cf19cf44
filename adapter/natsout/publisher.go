package natsout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Message is binding.Message, what Publish takes.
type Message = binding.Message

// Publisher publishes over one NATS connection that it keeps open and
// reconnects forever. It is safe for concurrent use; a Publish call holds no
// lock while it waits for the server.
type Publisher struct {
	cfg        Config
	log        *slog.Logger
	ackTimeout time.Duration
	// cur is the connection in use. A connection that nats.go closes for
	// good while the process runs (the server sent an error nats.go does
	// not recover from) is replaced by a new one when Connect made it
	// (redial); one the caller made (New) cannot be, and the Publisher is
	// then lost: Alive reports it.
	cur    atomic.Pointer[link]
	redial func() (*nats.Conn, error)
	lost   atomic.Bool
	// reconnects of the connections replaced, so that Stats only grows.
	reconnectsBefore atomic.Uint64
	flush            *flusher // core mode only
	denied           *denials

	// Stream setup runs on one goroutine, woken after every (re)connect.
	streamKick   chan struct{}
	streamOK     atomic.Bool
	streamWarned atomic.Bool
	// uncaptured says why not ready when no stream captures a subject of
	// Config.MustCapture (JetStream mode): nil until checked on this
	// connection, "" when every one is captured.
	uncaptured atomic.Pointer[string]

	closing   atomic.Bool
	stop      chan struct{} // closed by Close
	closed    chan struct{} // closed when the connection is closed for good
	closeOnce sync.Once

	// Failed connection attempts are logged when their error changes and at
	// most once a minute otherwise: a retry every 250ms must not flood.
	attemptMu      sync.Mutex
	attemptErr     string
	attemptLogged  time.Time
	attemptsFailed int

	published  atomic.Uint64
	failed     atomic.Uint64
	stored     atomic.Uint64 // acks of messages new to the stream
	duplicates atomic.Uint64 // acks of messages the stream already had
}

// Stats counts what a Publisher did since Connect.
type Stats struct {
	Published  uint64 // messages NATS confirmed (flush or ack)
	Failed     uint64 // messages that got an error
	Acks       uint64 // JetStream acks received, duplicates included
	Duplicates uint64 // JetStream acks that reported an already stored msg id
	Reconnects uint64 // successful reconnects of the connection
	// Flushes counts core-mode round trips (PING/PONG); concurrent
	// requests share them, so under load it stays below Published.
	Flushes uint64
}

// Connect opens the process's NATS connection. Bad configuration (unreadable
// credentials, bad TLS files) is an error; an unreachable server is not:
// the connection keeps retrying forever and Ready reports false until it is
// up (and, with Config.StreamCreate, until the stream exists).
func Connect(ctx context.Context, cfg Config, opts ...Option) (*Publisher, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsout: connect: %w", err)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	o := options{reconnectWait: 250 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	p := newPublisher(cfg)
	natsOpts, err := p.natsOptions(&o)
	if err != nil {
		return nil, err
	}
	url := cfg.URL
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("natsout: connect %s: %w", RedactURL(url), redactErr(err, url))
	}
	p.redial = func() (*nats.Conn, error) { return nats.Connect(url, natsOpts...) }
	if err := p.use(nc); err != nil {
		nc.Close()
		return nil, err
	}
	return p, nil
}

// New makes a Publisher on a connection the caller opened, as
// jetstream.New does: the connection, its reconnect policy and its
// authentication are the caller's (Config's URL and authentication fields
// are not used). New takes over the connection's reconnect, disconnect and
// closed handlers, which Ready, stream setup and Close depend on; Close
// drains the connection. Prefer unlimited reconnects and no reconnect buffer
// (nats.ReconnectBufSize(-1)): a publish buffered while disconnected is not
// in NATS.
func New(nc *nats.Conn, cfg Config) (*Publisher, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	p := newPublisher(cfg)
	nc.SetReconnectHandler(p.onReconnect)
	nc.SetDisconnectErrHandler(p.onDisconnect)
	nc.SetClosedHandler(p.onClosed)
	if err := p.use(nc); err != nil {
		return nil, err
	}
	// There is no handler for a first connect still pending on a connection
	// made with RetryOnFailedConnect: wait for it here.
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for !nc.IsConnected() {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
		p.kickStream()
	}()
	return p, nil
}

func newPublisher(cfg Config) *Publisher {
	return &Publisher{
		cfg:        cfg,
		log:        cfg.logger(),
		ackTimeout: cfg.ackTimeout(),
		streamKick: make(chan struct{}, 1),
		denied:     newDenials(),
		stop:       make(chan struct{}),
		closed:     make(chan struct{}),
	}
}

// link is one connection and its JetStream context.
type link struct {
	nc *nats.Conn
	js jetstream.JetStream // nil in core mode without stream creation
}

func (p *Publisher) conn() *nats.Conn               { return p.cur.Load().nc }
func (p *Publisher) jetstream() jetstream.JetStream { return p.cur.Load().js }

// use binds p to its first connection and starts its goroutines.
func (p *Publisher) use(nc *nats.Conn) error {
	if err := p.bind(nc); err != nil {
		return err
	}
	if p.cfg.Mode != JetStream {
		p.flush = newFlusher(p.conn, p.ackTimeout, p.stop, func(m *Message, err error) error { return publishError(m, classify(err)) }, p.denied)
		go p.flush.run()
	}
	if p.jetstream() != nil {
		go p.streamLoop() // woken after every (re)connect
	}
	return nil
}

// bind makes nc the connection in use.
func (p *Publisher) bind(nc *nats.Conn) error {
	l := &link{nc: nc}
	// A stream to create is created in core mode too: core publishes to its
	// subjects are stored (without an ack), so the embedded server's stream
	// keeps events and dead letters in either mode.
	if p.cfg.Mode == JetStream || p.cfg.StreamCreate {
		var err error
		l.js, err = jetstream.New(nc,
			jetstream.WithPublishAsyncTimeout(p.ackTimeout),
			jetstream.WithDefaultTimeout(p.ackTimeout))
		if err != nil {
			return fmt.Errorf("natsout: jetstream: %w", err)
		}
	}
	if old := p.cur.Swap(l); old != nil {
		p.reconnectsBefore.Add(old.nc.Stats().Reconnects + 1)
	}
	return nil
}

// reopen replaces a connection nats.go closed for good by a new one, made
// the way Connect made the first.
func (p *Publisher) reopen(old *nats.Conn) {
	if p.closing.Load() || p.conn() != old {
		return
	}
	nc, err := p.redial()
	if err == nil {
		err = p.bind(nc)
	}
	if err != nil {
		p.log.Error("nats connection closed and cannot be opened again; the process must restart", "error", err)
		p.lost.Store(true)
		p.closeOnce.Do(func() { close(p.closed) })
		return
	}
	if p.closing.Load() {
		nc.Close()
		return
	}
	p.log.Warn("nats connection replaced by a new one")
	p.kickStream()
}

// Alive reports whether the Publisher can still publish some day by itself:
// false only when its connection was closed for good and cannot be opened
// again (a connection handed to New), which only a restart repairs.
func (p *Publisher) Alive() bool { return !p.lost.Load() }

func (p *Publisher) natsOptions(o *options) ([]nats.Option, error) {
	cfg := &p.cfg
	name := cfg.Name
	if name == "" {
		name = "rgw-nats"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		// Keep trying after auth errors too: a server restarting with its
		// accounts not loaded yet, or credentials fixed by the operator,
		// must not leave the process without a connection for good.
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(o.reconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of being held and sent later, after we may already have
		// answered the sender.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(p.onConnect),
		nats.ReconnectHandler(p.onReconnect),
		nats.DisconnectErrHandler(p.onDisconnect),
		nats.ClosedHandler(p.onClosed),
		nats.ErrorHandler(p.onAsyncError),
		nats.ReconnectErrHandler(p.onReconnectError),
	}
	if cfg.CredsFile != "" {
		if err := checkCreds(cfg.CredsFile); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NkeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("natsout: nkey seed %s: %w", cfg.NkeySeedFile, err)
		}
		opts = append(opts, opt)
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	// nats.Connect applies every option before dialling, and the TLS
	// options read their files then: a bad file fails Connect even while
	// the server is unreachable.
	return append(opts, o.nats...), nil
}

// checkCreds reads a creds file the way the connection will, so that a
// missing or malformed file fails Connect instead of every reconnect.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("natsout: creds file: %w", err)
	}
	defer clear(b)
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("natsout: creds file %s: no user JWT: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("natsout: creds file %s: no user nkey seed: %w", path, err)
	}
	kp.Wipe()
	return nil
}

// RedactURL hides the userinfo of NATS URLs (one or a comma-separated
// list), for logs and errors.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndexByte(u, '@'); at >= 0 {
			scheme := ""
			if s := strings.Index(u, "://"); s >= 0 && s < at {
				scheme = u[:s+3]
			}
			parts[i] = scheme + "***" + u[at:]
		}
	}
	return strings.Join(parts, ",")
}

func (p *Publisher) resetAttempts() {
	p.attemptMu.Lock()
	p.attemptErr, p.attemptsFailed = "", 0
	p.attemptMu.Unlock()
}

func (p *Publisher) onConnect(nc *nats.Conn) {
	p.resetAttempts()
	p.log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	p.kickStream()
}

func (p *Publisher) onReconnect(nc *nats.Conn) {
	p.resetAttempts()
	p.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	p.kickStream()
}

func (p *Publisher) onDisconnect(_ *nats.Conn, err error) {
	// The stream is checked again once connected: the server we reach next
	// may have lost it.
	p.streamOK.Store(false)
	p.uncaptured.Store(nil)
	if p.closing.Load() {
		return
	}
	p.log.Warn("nats disconnected; reconnecting", "error", err)
}

func (p *Publisher) onClosed(nc *nats.Conn) {
	if p.closing.Load() {
		p.closeOnce.Do(func() { close(p.closed) })
		return
	}
	if l := p.cur.Load(); l == nil || l.nc != nc {
		return // a connection already replaced
	}
	if p.redial == nil {
		p.log.Error("nats connection closed for good; the process must restart", "error", nc.LastError())
		p.lost.Store(true)
		p.closeOnce.Do(func() { close(p.closed) })
		return
	}
	// nats.go closes the connection for good on a server error it does not
	// know (a protocol line too long, say): open a new one, forever, as for
	// any other disconnect.
	p.log.Error("nats connection closed by an error; opening a new one", "error", nc.LastError())
	go p.reopen(nc)
}

func (p *Publisher) onReconnectError(_ *nats.Conn, err error) {
	p.attemptMu.Lock()
	defer p.attemptMu.Unlock()
	p.attemptsFailed++
	msg := err.Error()
	if msg == p.attemptErr && time.Since(p.attemptLogged) < time.Minute {
		return
	}
	p.log.Warn("nats connection attempt failed; retrying", "error", err, "failed_attempts", p.attemptsFailed)
	p.attemptErr, p.attemptLogged, p.attemptsFailed = msg, time.Now(), 0
}

func (p *Publisher) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub == nil {
		p.denied.record(err)
	}
	if sub != nil {
		p.log.Warn("nats async error", "subject", sub.Subject, "error", err)
		return
	}
	p.log.Warn("nats async error", "error", err)
}

// Ready reports whether a publish can succeed now: the connection is up
// and, in JetStream mode, the stream has been created or checked on this
// connection (with Config.StreamCreate) and some stream captures every
// subject of Config.MustCapture.
func (p *Publisher) Ready() bool { return p.NotReady() == "" }

// NotReady says in one line why the Publisher is not ready; "" when it is.
func (p *Publisher) NotReady() string {
	switch {
	case p.closing.Load():
		return "stopping"
	case !p.conn().IsConnected():
		return "NATS unavailable: not connected"
	case p.needStream() && !p.streamOK.Load():
		return fmt.Sprintf("stream %q not set up yet", p.cfg.Stream)
	case p.needCapture():
		why := p.uncaptured.Load()
		if why == nil {
			return "JetStream streams not checked yet"
		}
		return *why
	}
	return ""
}

// WaitReady blocks until Ready or until ctx is done.
func (p *Publisher) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsout: waiting for NATS: %w: %w", ErrUnavailable, ctx.Err())
		case <-p.closed:
			return fmt.Errorf("natsout: waiting for NATS: %w: connection closed", ErrUnavailable)
		case <-t.C:
		}
	}
	return nil
}

// Conn returns the shared connection, for subscribers and for Lua scripts
// that publish themselves. Do not close it; call Close.
//
// The connection is replaced when nats.go closed it for good (see Alive):
// ask again rather than keeping it.
func (p *Publisher) Conn() *nats.Conn { return p.conn() }

// Stats returns the counters.
// Each counter only grows, and Acks-Duplicates too (each ack adds to exactly
// one of two counters), so they can be exported as Prometheus counters.
func (p *Publisher) Stats() Stats {
	dup := p.duplicates.Load()
	return Stats{
		Published:  p.published.Load(),
		Failed:     p.failed.Load(),
		Acks:       p.stored.Load() + dup,
		Duplicates: dup,
		Reconnects: p.reconnectsBefore.Load() + p.conn().Stats().Reconnects,
		Flushes:    p.flushes(),
	}
}

func (p *Publisher) flushes() uint64 {
	if p.flush == nil {
		return 0
	}
	return p.flush.rounds.Load()
}

// Close drains the connection: messages already published are flushed and
// the connection closes, bounded by ctx. While reconnecting a drain is not
// possible; Close then flushes what it can and closes.
func (p *Publisher) Close(ctx context.Context) error {
	if !p.closing.CompareAndSwap(false, true) {
		return nil
	}
	close(p.stop)
	connected := p.conn().IsConnected()
	err := p.conn().Drain()
	if errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	if err != nil && !connected {
		// Not connected (NATS never reachable, or away now): nothing is
		// buffered, since a publish while disconnected fails at once and
		// was answered 503, so closing loses nothing.
		p.conn().Close()
		return nil
	}
	if err != nil {
		timeout := time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(d))
		}
		if timeout > 0 {
			_ = p.conn().FlushTimeout(timeout)
		}
		p.conn().Close()
		return fmt.Errorf("natsout: close without drain: %w", err)
	}
	select {
	case <-p.closed:
		return nil
	case <-ctx.Done():
		p.conn().Close()
		return fmt.Errorf("natsout: drain: %w", ctx.Err())
	}
}

// Publish publishes msgs and reports, per message, whether NATS has it: a
// nil error means flushed to the server (core) or acknowledged by a stream
// (JetStream). Errors wrap ErrUnavailable (retry later) or ErrRejected.
func (p *Publisher) Publish(ctx context.Context, msgs []Message) []error {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	if st := p.conn().Status(); st != nats.CONNECTED {
		cause := fmt.Errorf("%w: connection %s", ErrUnavailable, strings.ToLower(st.String()))
		for i := range msgs {
			errs[i] = publishError(&msgs[i], cause)
		}
		p.failed.Add(uint64(len(msgs)))
		return errs
	}
	for i := range msgs {
		// What the server would refuse is refused here: a subject it cannot
		// read makes it drop the connection every request shares.
		if err := p.refusal(&msgs[i]); err != nil {
			errs[i] = publishError(&msgs[i], err)
		}
	}
	if p.cfg.Mode == JetStream {
		p.publishJetStream(ctx, msgs, errs)
	} else {
		p.publishCore(ctx, msgs, errs)
	}
	var failed uint64
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	p.failed.Add(failed)
	p.published.Add(uint64(len(msgs)) - failed)
	return errs
}

func (p *Publisher) publishCore(ctx context.Context, msgs []Message, errs []error) {
	pending := false
	for _, err := range errs {
		pending = pending || err == nil
	}
	if !pending {
		return
	}
	// The flusher publishes the messages and shares the round trip with
	// concurrent callers.
	if err := p.flush.send(ctx, msgs, errs); err != nil {
		cause := fmt.Errorf("%w: flush: %w", ErrUnavailable, err)
		for i := range msgs {
			if errs[i] == nil {
				errs[i] = publishError(&msgs[i], cause)
			}
		}
	}
}

func (p *Publisher) publishJetStream(ctx context.Context, msgs []Message, errs []error) {
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if errs[i] != nil {
			continue
		}
		nm := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		var err error
		if m.MsgID != "" && m.Header.Get(jetstream.MsgIDHeader) != m.MsgID {
			// WithMsgID writes into the header; never into the caller's map,
			// which other goroutines may be reading.
			nm.Header = cloneHeader(m.Header, 1)
			futures[i], err = p.jetstream().PublishMsgAsync(nm, jetstream.WithMsgID(m.MsgID))
		} else {
			futures[i], err = p.jetstream().PublishMsgAsync(nm)
		}
		if err != nil {
			errs[i] = publishError(m, classify(err))
		}
	}
	timer := time.NewTimer(p.ackTimeout)
	defer timer.Stop()
	expired := false
	for i, f := range futures {
		if f == nil {
			continue
		}
		answered := false
		for !expired && !answered {
			// A denied publish never gets an ack: stop waiting for it as
			// soon as the server's -ERR names its subject.
			denied := p.denied.changes()
			if p.denied.since(msgs[i].Subject, start) {
				errs[i] = publishError(&msgs[i], deniedError(msgs[i].Subject))
				answered = true
				break
			}
			select {
			case ack := <-f.Ok():
				p.acked(ack)
				answered = true
			case err := <-f.Err():
				errs[i] = publishError(&msgs[i], p.classifyJS(ctx, msgs[i].Subject, err))
				answered = true
			case <-denied:
				if p.denied.since(msgs[i].Subject, start) {
					errs[i] = publishError(&msgs[i], deniedError(msgs[i].Subject))
					answered = true
				}
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				expired = true
			}
		}
		if answered {
			continue
		}
		// Out of time: take what already arrived, the rest is not acked.
		// The server may still store it; a retry with the same msg id is
		// then answered as a duplicate.
		select {
		case ack := <-f.Ok():
			p.acked(ack)
		case err := <-f.Err():
			errs[i] = publishError(&msgs[i], p.classifyJS(ctx, msgs[i].Subject, err))
		default:
			errs[i] = publishError(&msgs[i], p.noAck())
		}
	}
	// A missing ack has two more causes that a retry does not cure: the
	// server denied the publish (its -ERR says so), or no stream captures
	// the subject while a core subscriber took the message (a stream
	// deleted while running): then no "no responders" comes back, only
	// silence. Either is permanent, whether a subscriber listens or not.
	var lookedUp map[string]error
	for i, err := range errs {
		if err == nil || !errors.Is(err, errNoAck) {
			continue
		}
		subj := msgs[i].Subject
		if p.denied.since(subj, start) {
			errs[i] = publishError(&msgs[i], deniedError(subj))
			continue
		}
		if lookedUp == nil {
			lookedUp = map[string]error{}
		}
		nerr, ok := lookedUp[subj]
		if !ok {
			nerr = p.noStream(ctx, subj)
			lookedUp[subj] = nerr
		}
		if nerr != nil {
			errs[i] = publishError(&msgs[i], nerr)
		}
	}
}

// classifyJS tells a subject that no stream captures (permanent) from a
// stream that is there but did not answer (its leader moving, JetStream
// starting): both come back as "no responders". Only the failure path pays
// for the look-up.
func (p *Publisher) classifyJS(ctx context.Context, subj string, err error) error {
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		// One wording for a missing ack, however it was noticed.
		return p.noAck()
	}
	if cerr, ok := classifyAPI(err); ok {
		return cerr
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		return classify(err)
	}
	if nerr := p.noStream(ctx, subj); nerr != nil {
		return nerr
	}
	return classify(err)
}

// errNoAck is wrapped (with ErrUnavailable) when no ack came in time.
var errNoAck = errors.New("no JetStream ack")

func (p *Publisher) noAck() error {
	return fmt.Errorf("%w: %w within %v", ErrUnavailable, errNoAck, p.ackTimeout)
}

// noStream is ErrNoStream, naming the subject and what the configured
// stream captures, when the server says that no stream captures subj; nil
// when one does or the server cannot say.
func (p *Publisher) noStream(ctx context.Context, subj string) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(p.ackTimeout, 2*time.Second))
	defer cancel()
	_, lerr := p.jetstream().StreamNameBySubject(lctx, subj)
	if !errors.Is(lerr, jetstream.ErrStreamNotFound) {
		return nil
	}
	expect := ""
	if p.cfg.Stream != "" {
		if subs := p.streamSubjects(lctx); subs != nil {
			expect = fmt.Sprintf(" (stream %q captures %v)", p.cfg.Stream, subs)
		} else {
			expect = fmt.Sprintf(" (stream %q does not exist)", p.cfg.Stream)
		}
	}
	return fmt.Errorf("%w: %q%s", ErrNoStream, subject.Short(subj), expect)
}

// streamSubjects is what the configured stream captures, for an error
// message.
func (p *Publisher) streamSubjects(ctx context.Context) []string {
	s, err := p.jetstream().Stream(ctx, p.cfg.Stream)
	if err != nil {
		return nil
	}
	return s.CachedInfo().Config.Subjects
}

func (p *Publisher) acked(ack *jetstream.PubAck) {
	if ack.Duplicate {
		p.duplicates.Add(1)
	} else {
		p.stored.Add(1)
	}
}

// classify marks errors that a retry cannot fix as ErrRejected, everything
// else as ErrUnavailable.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrRejected), errors.Is(err, ErrDenied):
		return err
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrHeadersNotSupported), errors.Is(err, nats.ErrInvalidMsg),
		errors.Is(err, nats.ErrBadHeaderMsg):
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func publishError(m *Message, cause error) error {
	return fmt.Errorf("natsout: publish %q (msg id %q): %w", subject.Short(m.Subject), subject.Short(m.MsgID), cause)
}

func cloneHeader(h nats.Header, extra int) nats.Header {
	c := make(nats.Header, len(h)+extra)
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// redactErr hides in err's message the userinfo of urls, which errors of
// nats.Connect and url.Parse quote (a malformed NATS_URL is printed whole).
func redactErr(err error, urls string) error {
	msg := err.Error()
	redacted := msg
	for _, u := range strings.Split(urls, ",") {
		at := strings.LastIndexByte(u, '@')
		if at < 0 {
			continue
		}
		userinfo := u[:at]
		if s := strings.Index(userinfo, "://"); s >= 0 {
			userinfo = userinfo[s+3:]
		}
		for _, secret := range []string{userinfo, userinfo[strings.IndexByte(userinfo, ':')+1:]} {
			if secret != "" {
				redacted = strings.ReplaceAll(redacted, secret, "***")
			}
		}
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
