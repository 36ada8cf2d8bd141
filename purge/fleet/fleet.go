// Package fleet propagates purges to every node of a fleet over NATS
// JetStream: a purge this node applied is published to a stream that every
// node consumes with a durable consumer named after itself, and receipts
// (which node applied which purge, when) are kept in a key-value bucket.
//
// It implements purge.Fleet; cmd/edged joins a Purger to it with
// purge.Config{JoinFleet: fleet.Config{...}.Join}.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edged-proxy/edged/purge"
)

// Defaults for Config fields left zero.
const (
	DefaultStream         = "EDGED_PURGES"
	DefaultSubject        = "edged.purge"
	DefaultReceiptBucket  = "EDGED_PURGE_RECEIPTS"
	DefaultMaxAge         = 7 * 24 * time.Hour
	DefaultConnectTimeout = 2 * time.Second
	DefaultPublishTimeout = 2 * time.Second
	DefaultRetryInterval  = time.Second
	DefaultMaxPending     = 10000
)

// Config configures propagation of purges to every node over NATS
// JetStream. Every node of a fleet must use the same Stream, Subject and
// ReceiptBucket.
type Config struct {
	// URL is the NATS server URL, or several separated by commas. Required.
	URL string
	// Stream is the JetStream stream holding purges; created (file storage)
	// if missing. Default "EDGED_PURGES".
	Stream string
	// Subject is the subject prefix: purges go to "<Subject>.cmd". Default
	// "edged.purge".
	Subject string
	// ReceiptBucket is the JetStream key-value bucket holding receipts: key
	// "<id>" is the purge (with its origin's application), "<id>.<node>" is
	// one node's application. Created (file storage) if missing. Default
	// "EDGED_PURGE_RECEIPTS".
	ReceiptBucket string
	// MaxAge is how long the stream keeps purges and the bucket keeps
	// receipts, when this node creates them. A node down for longer misses
	// the purges that expired meanwhile. Default 7 days.
	MaxAge time.Duration
	// Replicas is the stream's and bucket's replica count when this node
	// creates them (a clustered NATS wants 3). Default 1.
	Replicas int
	// ConnectTimeout bounds one connection attempt. Default 2s.
	ConnectTimeout time.Duration
	// PublishTimeout bounds publishing one purge (and one receipt lookup).
	// A purge not published within it is answered "pending". Default 2s.
	PublishTimeout time.Duration
	// RetryInterval is the pause between reconnection attempts, setup
	// attempts and publishing pending purges, and the redelivery delay of a
	// fleet purge whose local application failed. Default 1s.
	RetryInterval time.Duration
	// MaxPending bounds the in-memory queue of purges waiting to be
	// published. A purge accepted when it is full is applied locally only
	// and answered with fleet state "failed". Default 10000.
	MaxPending int
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed,
	// as `nsc` writes them) for servers in operator mode. Read at Join and
	// again at each reconnection. "" means none.
	CredsFile string
	// NkeyFile is a file holding a user nkey seed (SU...), for servers
	// that list users by nkey. Not with CredsFile. "" means none.
	NkeyFile string
	// CAFile is a PEM file of the CAs that sign the NATS server's
	// certificate, replacing the system's roots. Setting it (or CertFile)
	// makes the connection use TLS.
	CAFile string
	// CertFile and KeyFile are the client certificate chain and its key
	// (PEM), for servers that verify clients; both or neither.
	CertFile, KeyFile string
	// Options are extra NATS connection options, applied after edged's own
	// and those the fields above make.
	Options []nats.Option
}

func (c *Config) defaults() error {
	if strings.TrimSpace(c.URL) == "" {
		return errors.New("purge: NATS.URL is required with a fleet")
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.ReceiptBucket == "" {
		c.ReceiptBucket = DefaultReceiptBucket
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	for _, n := range []struct{ what, v string }{{"Stream", c.Stream}, {"ReceiptBucket", c.ReceiptBucket}} {
		if strings.IndexFunc(n.v, notNameRune) >= 0 {
			return fmt.Errorf("purge: NATS.%s %q: use letters, digits, '-' or '_'", n.what, n.v)
		}
	}
	for _, tok := range strings.Split(c.Subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.IndexFunc(tok, ctlOrSpace) >= 0 {
			return fmt.Errorf("purge: NATS.Subject %q: not a valid subject without wildcards", c.Subject)
		}
	}
	return nil
}

// fleet is a node's membership of a fleet: the publisher (with its queue
// of pending purges) and the durable consumer.
type fleet struct {
	l    purge.Local
	cfg  Config
	subj string
	nc   *nats.Conn
	js   jetstream.JetStream

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	mu      sync.Mutex
	isReady bool
	closing bool // under mu: no more queueing
	kv      jetstream.KeyValue
	cc      jetstream.ConsumeContext
	pending []purge.Command

	handleMu sync.Mutex // held while one fleet message is handled
	stopped  bool
}

var errNotConnected = errors.New("NATS not reachable")

var _ purge.Fleet = (*fleet)(nil)

// Join checks c and joins the node l describes to the fleet: it starts
// connecting to NATS in the background and returns at once, without failing
// when NATS is unreachable (purges are then queued, "pending", until it is).
// In the background it creates the stream and the receipt bucket if they
// are missing, then consumes the stream with a durable consumer named
// l.Node, applying every other node's purges through l.Apply. Its method
// value is a purge.Config.JoinFleet.
func (c Config) Join(l purge.Local) (purge.Fleet, error) {
	f, err := newFleet(l, c)
	if err != nil {
		return nil, err
	}
	f.start()
	return f, nil
}

func newFleet(l purge.Local, cfg Config) (*fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	auth, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	f := &fleet{l: l, cfg: cfg, subj: cfg.Subject + ".cmd", kick: make(chan struct{}, 1)}
	log := l.Logger.With("component", "purge-fleet", "node", l.Node)
	opts := []nats.Option{
		nats.Name("edged-purge-" + l.Node),
		nats.Timeout(cfg.ConnectTimeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.RetryInterval),
		// No buffering while disconnected: a publish fails at once and the
		// purge is queued as pending instead of vanishing in a buffer.
		nats.ReconnectBufSize(-1),
		// Keep retrying after an authorization error too: fixing the
		// server's users must not need an edged restart.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", "error", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			f.poke()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			f.poke()
		}),
	}
	opts = append(append(opts, auth...), cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("purge: NATS %s: %w", cfg.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("purge: JetStream: %w", err)
	}
	f.nc, f.js = nc, js
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

func (f *fleet) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *fleet) start() {
	f.wg.Add(1)
	go f.run()
}

// run sets up stream, bucket and consumer (retrying until NATS answers),
// then publishes pending purges whenever poked or every RetryInterval.
func (f *fleet) run() {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.RetryInterval)
	defer t.Stop()
	for !f.ready() {
		if err := f.setup(); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.l.Failed(purge.StageConnect, 1)
			f.l.Logger.Warn("purge fleet setup failed; retrying", "node", f.l.Node, "error", err, "retry_in", f.cfg.RetryInterval)
			select {
			case <-f.ctx.Done():
				return
			case <-t.C:
			case <-f.kick:
			}
		}
	}
	for {
		f.flush(f.ctx)
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
	}
}

// Ready reports whether the stream, bucket and consumer are set up and
// NATS is connected.
func (f *fleet) Ready() bool { return f.ready() && f.nc.IsConnected() }

func (f *fleet) ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.isReady
}

func (f *fleet) setup() error {
	if !f.nc.IsConnected() {
		// The last connection error says why: refused, a TLS
		// verification failure, an authorization violation.
		if err := f.nc.LastError(); err != nil {
			return fmt.Errorf("%w: %w", errNotConnected, err)
		}
		return errNotConnected
	}
	ctx, cancel := context.WithTimeout(f.ctx, 2*f.cfg.PublishTimeout)
	defer cancel()
	_, err := f.js.Stream(ctx, f.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = f.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        f.cfg.Stream,
			Description: "edged purges (one message per purge, deduplicated by Nats-Msg-Id = purge id)",
			Subjects:    []string{f.subj},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      f.cfg.MaxAge,
			Replicas:    f.cfg.Replicas,
			Duplicates:  min(10*time.Minute, f.cfg.MaxAge),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			_, err = f.js.Stream(ctx, f.cfg.Stream)
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", f.cfg.Stream, err)
	}
	kv, err := f.js.KeyValue(ctx, f.cfg.ReceiptBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = f.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      f.cfg.ReceiptBucket,
			Description: "edged purge receipts: <id> = purge, <id>.<node> = applied on node",
			TTL:         f.cfg.MaxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    f.cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = f.js.KeyValue(ctx, f.cfg.ReceiptBucket)
		}
	}
	if err != nil {
		return fmt.Errorf("receipt bucket %s: %w", f.cfg.ReceiptBucket, err)
	}
	// The bucket is in place before the consumer starts: its handler
	// writes receipts as soon as messages arrive.
	f.mu.Lock()
	f.kv = kv
	f.mu.Unlock()
	cons, err := f.js.CreateOrUpdateConsumer(ctx, f.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       f.l.Node,
		Description:   "edged node " + f.l.Node + " applying fleet purges",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       f.l.ApplyTimeout + 30*time.Second,
		MaxAckPending: 256,
		FilterSubject: f.subj,
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", f.l.Node, err)
	}
	cc, err := cons.Consume(f.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		f.l.Logger.Debug("purge fleet consumer", "node", f.l.Node, "error", err)
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", f.l.Node, err)
	}
	f.mu.Lock()
	f.kv, f.cc, f.isReady = kv, cc, true
	f.mu.Unlock()
	f.l.Logger.Info("purge fleet ready", "node", f.l.Node, "stream", f.cfg.Stream, "subject", f.subj, "bucket", f.cfg.ReceiptBucket)
	return nil
}

// Submit publishes a purge this node applied, or queues it when NATS is not
// reachable (state pending) or the queue is full (state failed).
func (f *fleet) Submit(ctx context.Context, c purge.Command) purge.FleetStatus {
	f.mu.Lock()
	direct := len(f.pending) == 0 && f.isReady && f.nc.IsConnected()
	queued := len(f.pending)
	f.mu.Unlock()
	var err error
	if direct {
		if err = f.publish(ctx, c); err == nil {
			fs := purge.FleetStatus{State: purge.FleetPublished}
			f.l.SetStatus(c.ID, fs)
			return fs
		}
		f.l.Failed(purge.StagePublish, 1)
	} else if queued > 0 {
		err = fmt.Errorf("queued behind %d pending purges", queued)
	} else {
		err = errNotConnected
	}
	return f.enqueue(c, err)
}

func (f *fleet) enqueue(c purge.Command, cause error) purge.FleetStatus {
	f.mu.Lock()
	full := len(f.pending) >= f.cfg.MaxPending || f.closing
	if !full {
		f.pending = append(f.pending, c)
		f.l.SetPending(len(f.pending))
	}
	f.mu.Unlock()
	var fs purge.FleetStatus
	if full {
		fs = purge.FleetStatus{State: purge.FleetFailed, Error: fmt.Sprintf("not published to the fleet: pending queue full (%d) or shutting down; %v", f.cfg.MaxPending, cause)}
		f.l.Failed(purge.StageQueue, 1)
		f.l.Logger.Error("purge not propagated to the fleet", "id", c.ID, "error", fs.Error)
	} else {
		fs = purge.FleetStatus{State: purge.FleetPending, Error: cause.Error() + "; will be published when NATS is reachable"}
		f.poke()
	}
	f.l.SetStatus(c.ID, fs)
	return fs
}

// publish puts one purge in the stream (deduplicated by its id) and in the
// receipt bucket.
func (f *fleet) publish(ctx context.Context, c purge.Command) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.PublishTimeout)
	defer cancel()
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := f.js.Publish(ctx, f.subj, data, jetstream.WithMsgID(c.ID)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	f.mu.Lock()
	kv := f.kv
	f.mu.Unlock()
	if kv == nil {
		f.l.Failed(purge.StageReceipt, 1)
		f.l.Logger.Warn("purge receipt not stored: no receipt bucket yet", "id", c.ID)
	} else if _, err := kv.Put(ctx, c.ID, data); err != nil {
		f.l.Failed(purge.StageReceipt, 1)
		f.l.Logger.Warn("purge receipt not stored", "id", c.ID, "error", err)
	}
	return nil
}

// flush publishes pending purges in order until one fails.
func (f *fleet) flush(ctx context.Context) {
	for {
		f.mu.Lock()
		if len(f.pending) == 0 || !f.isReady {
			f.mu.Unlock()
			return
		}
		c := f.pending[0]
		f.mu.Unlock()
		if !f.nc.IsConnected() || ctx.Err() != nil {
			return
		}
		if err := f.publish(ctx, c); err != nil {
			f.l.Failed(purge.StagePublish, 1)
			f.l.SetStatus(c.ID, purge.FleetStatus{State: purge.FleetPending, Error: err.Error() + "; will be retried"})
			f.l.Logger.Debug("pending purge not published yet", "id", c.ID, "error", err)
			return
		}
		f.mu.Lock()
		if len(f.pending) > 0 && f.pending[0].ID == c.ID {
			f.pending = f.pending[1:]
		}
		f.l.SetPending(len(f.pending))
		f.mu.Unlock()
		f.l.SetStatus(c.ID, purge.FleetStatus{State: purge.FleetPublished})
		f.l.Logger.Info("pending purge published", "id", c.ID, "waited", f.l.Now().Sub(c.AcceptedAt))
	}
}

// handle applies one fleet purge: once per id, acked only after the
// Invalidator returned nil.
func (f *fleet) handle(msg jetstream.Msg) {
	f.handleMu.Lock()
	defer f.handleMu.Unlock()
	if f.stopped {
		return // not acked: redelivered to this consumer after a restart
	}
	var c purge.Command
	if err := json.Unmarshal(msg.Data(), &c); err != nil || !purge.ValidID(c.ID) || c.Selector.Validate(math.MaxInt) != nil {
		f.l.Failed(purge.StageDecode, 1)
		f.l.Logger.Error("malformed fleet purge dropped", "node", f.l.Node, "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	nr, applied, err := f.l.Apply(f.ctx, c)
	if err != nil {
		f.l.Failed(purge.StageApply, 1)
		f.l.Logger.Error("fleet purge failed locally; will be redelivered", "id", c.ID, "origin", c.Origin, "error", err)
		_ = msg.NakWithDelay(f.cfg.RetryInterval)
		return
	}
	if applied {
		if err := f.putReceipt(c.ID, nr); err != nil {
			f.l.Failed(purge.StageReceipt, 1)
			f.l.Logger.Warn("purge receipt not stored", "id", c.ID, "error", err)
		}
	}
	f.ack(msg, c.ID)
}

func (f *fleet) ack(msg jetstream.Msg, id string) {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.PublishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		// Redelivered later and then skipped by id, unless this node
		// restarts meanwhile: at-least-once.
		f.l.Logger.Debug("fleet purge ack not confirmed", "id", id, "error", err)
	}
}

func (f *fleet) putReceipt(id string, nr purge.NodeReceipt) error {
	data, err := json.Marshal(nr)
	if err != nil {
		return err
	}
	f.mu.Lock()
	kv := f.kv
	f.mu.Unlock()
	if kv == nil { // the bucket is not set up (yet): the receipt is lost, the purge is not
		return errNotConnected
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.PublishTimeout)
	defer cancel()
	_, err = kv.Put(ctx, id+"."+f.l.Node, data)
	return err
}

// Receipt reads purge id's receipts from the bucket.
func (f *fleet) Receipt(ctx context.Context, id string) (purge.Receipt, bool, error) {
	f.mu.Lock()
	kv := f.kv
	f.mu.Unlock()
	if kv == nil || !f.nc.IsConnected() {
		return purge.Receipt{}, false, errNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.PublishTimeout)
	defer cancel()
	rc := purge.Receipt{ID: id}
	found := false
	e, err := kv.Get(ctx, id)
	switch {
	case err == nil:
		var c purge.Command
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return purge.Receipt{}, false, fmt.Errorf("receipt %s: %w", id, err)
		}
		found = true
		rc.Selector, rc.Origin, rc.AcceptedAt = c.Selector, c.Origin, c.AcceptedAt
		rc.Fleet = purge.FleetStatus{State: purge.FleetPublished}
		rc.Nodes = append(rc.Nodes, purge.NodeReceipt{Node: c.Origin, AppliedAt: c.AppliedAt, Matched: c.Matched})
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		return purge.Receipt{}, false, err
	}
	w, err := kv.Watch(ctx, id+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return purge.Receipt{}, false, err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return purge.Receipt{}, false, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return rc, found, nil
			}
			var nr purge.NodeReceipt
			if json.Unmarshal(e.Value(), &nr) == nil {
				found = true
				rc.Nodes = append(rc.Nodes, nr)
			}
		}
	}
}

// Close stops the loops and the consumer, makes one last attempt to publish
// pending purges (within the publish timeout), and closes the NATS
// connection. Purges still pending then are lost to the fleet (they were
// applied locally): they get state failed, are logged, and make the error.
func (f *fleet) Close() error {
	f.cancel()
	f.wg.Wait()
	f.handleMu.Lock()
	f.stopped = true
	f.handleMu.Unlock()
	f.mu.Lock()
	cc := f.cc
	f.mu.Unlock()
	if cc != nil {
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(f.cfg.PublishTimeout):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.PublishTimeout)
	f.flush(ctx)
	cancel()
	f.mu.Lock()
	lost := f.pending
	f.pending = nil
	f.closing = true
	f.l.SetPending(0)
	f.mu.Unlock()
	var err error
	if len(lost) > 0 {
		ids := make([]string, len(lost))
		for i, c := range lost {
			ids[i] = c.ID
			f.l.SetStatus(c.ID, purge.FleetStatus{State: purge.FleetFailed, Error: "node shut down before NATS was reachable"})
		}
		f.l.Failed(purge.StageQueue, len(lost))
		f.l.Logger.Error("pending purges never reached the fleet (applied on this node only)", "node", f.l.Node, "count", len(lost), "ids", ids)
		err = fmt.Errorf("purge: %d pending purges were not published to the fleet", len(lost))
	}
	if f.nc.IsConnected() {
		_ = f.nc.FlushTimeout(f.cfg.PublishTimeout)
	}
	f.nc.Close()
	return err
}

func notNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

func ctlOrSpace(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}
