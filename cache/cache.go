// Package cache is edged's HTTP cache: primary keys, RFC 9111 storability and
// freshness, the memory tier and coalesced origin fills.
//
// The cache fetches from origins only through the http.RoundTripper a Request
// carries; it never knows about shards or pools. It writes nothing to clients:
// it returns a Result, and the edge package turns it into a response and the
// Cache-Status header.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/edged-proxy/edged/storage"
)

// ErrOnlyIfCached is returned by Get when the request carries
// Cache-Control: only-if-cached and no usable stored response exists; the
// edge answers 504 (RFC 9111 §5.2.1.7).
var ErrOnlyIfCached = errors.New("cache: only-if-cached and nothing usable is stored")

// Config configures a Cache. The zero value is usable.
type Config struct {
	// MaxBytes is the memory tier's byte budget. Zero means 256 MiB.
	MaxBytes int64
	// MaxObjectBytes is the largest entry the memory tier keeps; larger
	// bodies are streamed to the client and not stored. Zero means 8 MiB.
	MaxObjectBytes int64
	// FillTimeout bounds one origin fill, headers and body. It runs detached
	// from the client that started it. Zero means 60 s.
	FillTimeout time.Duration
	// Registerer receives the cache's metrics; nil means unregistered.
	Registerer prometheus.Registerer
	// Logger is for fill errors; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Disk is the disk tier; nil runs with the memory tier only. The Cache
	// does not close it.
	Disk *storage.Store
	// VerifyLimit is the largest disk object whose checksums are all
	// verified before its first byte is sent (then it is sent with
	// sendfile); larger ones are verified block by block as they stream.
	// Zero means 32 MiB.
	VerifyLimit int64
	// RangeForwardOffset: a Range request that misses and asks for bytes
	// starting beyond this offset is forwarded to the origin with its Range
	// and not stored, instead of waiting for a whole-object fill to get
	// there. Zero means 16 MiB; negative means never forward.
	RangeForwardOffset int64
	// WriteBehind bounds the concurrent background copies of memory-filled
	// entries to the disk tier; when all are busy a copy is skipped. Zero
	// means 16.
	WriteBehind int
}

// Cache is a shared HTTP cache. It is safe for concurrent use.
type Cache struct {
	mem         *memoryTier
	disk        *storage.Store // nil: memory only
	flights     singleflight.Group
	streams     sync.Map // key → *stream: fills being written to disk
	inval       invalidations
	writeSlots  chan struct{}
	writers     sync.WaitGroup
	verifyLimit int64
	rangeFwd    int64
	m           *metrics
	fillTimeout time.Duration
	log         *slog.Logger
	now         func() time.Time
}

// New returns a Cache built from cfg.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.MaxObjectBytes == 0 {
		cfg.MaxObjectBytes = 8 << 20
	}
	if cfg.FillTimeout == 0 {
		cfg.FillTimeout = 60 * time.Second
	}
	if cfg.VerifyLimit == 0 {
		cfg.VerifyLimit = 32 << 20
	}
	if cfg.WriteBehind == 0 {
		cfg.WriteBehind = 16
	}
	if cfg.RangeForwardOffset == 0 {
		cfg.RangeForwardOffset = 16 << 20
	}
	switch {
	case cfg.MaxBytes < 0, cfg.MaxObjectBytes < 0, cfg.FillTimeout < 0:
		return nil, errors.New("cache: negative size or timeout in Config")
	case cfg.MaxObjectBytes > cfg.MaxBytes:
		return nil, fmt.Errorf("cache: MaxObjectBytes %d exceeds MaxBytes %d", cfg.MaxObjectBytes, cfg.MaxBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	mem, err := newMemoryTier(cfg.MaxBytes, cfg.MaxObjectBytes)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, mem, cfg.Disk)
	if err != nil {
		mem.close()
		return nil, err
	}
	return &Cache{
		mem:         mem,
		disk:        cfg.Disk,
		inval:       invalidations{ttl: 2 * cfg.FillTimeout},
		writeSlots:  make(chan struct{}, cfg.WriteBehind),
		verifyLimit: cfg.VerifyLimit,
		rangeFwd:    cfg.RangeForwardOffset,
		m:           m,
		fillTimeout: cfg.FillTimeout,
		log:         cfg.Logger,
		now:         cfg.Now,
	}, nil
}

// Close waits for pending disk writes and releases the memory tier. Fills
// still streaming finish on their own (bounded by FillTimeout).
func (c *Cache) Close() {
	c.writers.Wait()
	c.mem.close()
}

// Request is one cacheable client request.
type Request struct {
	// Key is the primary cache key (KeyFor, or a lifecycle hook's choice).
	Key string
	// In is the client's request: its headers select Vary variants and carry
	// the request Cache-Control directives and Authorization.
	In *http.Request
	// NewOut builds the GET request to send to the origin. It is called only
	// on a miss, at most once per fill, possibly on another goroutine, with
	// the fill's context: detached from the client's cancellation but
	// keeping its values. The cache owns the request it returns and removes
	// its conditional and Range fields. An error fails the fill.
	NewOut func(ctx context.Context) (*http.Request, error)
	// Transport reaches the origin.
	Transport http.RoundTripper
	// Policy holds the site's freshness knobs.
	Policy Policy
	// RangeStart is the first byte the client's Range asks for, or -1
	// (no Range, a suffix range, or several ranges).
	RangeStart int64
}

// Result is how a request was answered: either Entry (with its body in
// Entry.Body, or in Body) or Response is set.
type Result struct {
	// Entry is the stored (or just filled and shared) response to serve.
	// Its Body is nil when the body comes from Body.
	Entry *Entry
	// Body is the entry's body when it is not in memory: a disk object or
	// a fill being streamed. The caller must Close it.
	Body Body
	// Response is an origin response streamed through without being stored;
	// the caller must close its Body.
	Response *http.Response
	// Hit reports that no origin was contacted.
	Hit bool
	// Fwd is the RFC 9211 fwd reason when the origin was contacted:
	// "uri-miss", "vary-miss", "stale" or "request".
	Fwd string
	// Stored reports that this request's fill stored the response.
	Stored bool
	// Collapsed reports that the request waited on another request's fill.
	Collapsed bool
	// NotStored is why the response was not stored: a Decision.Reason or
	// "too-large".
	NotStored string
	// Age and TTL describe Entry at the time of the lookup.
	Age, TTL time.Duration
}

// Get answers r from the memory tier, or fetches it from the origin. Misses
// for one key are coalesced: one origin fetch, shared by every waiter whose
// request selects the same variant. A waiter whose context ends stops waiting
// without cancelling the fetch.
func (c *Cache) Get(ctx context.Context, r *Request) (Result, error) {
	dirs := ParseRequestDirectives(r.In.Header)
	fwd := "uri-miss"
	if e, ok := c.mem.get(r.Key); ok {
		if !e.matchesVary(r.In.Header) {
			fwd = "vary-miss"
		} else {
			now := c.now()
			age := e.Age(now)
			if dirs.Allows(e.Lifetime, age, e.MustRevalidate, e.NoCache) {
				return Result{Entry: e, Hit: true, Age: age, TTL: e.Lifetime - age}, nil
			}
			fwd = "stale"
			if age < e.Lifetime && !e.NoCache {
				fwd = "request"
			}
		}
	}
	if fwd == "uri-miss" {
		if res, ok := c.joinStream(r); ok {
			return res, nil
		}
		if c.disk != nil {
			res, f, ok := c.diskLookup(r, dirs)
			if ok {
				return res, nil
			}
			fwd = f
		}
	}
	if dirs.OnlyIfCached {
		return Result{}, ErrOnlyIfCached
	}
	if c.rangeFwd > 0 && r.RangeStart > c.rangeFwd {
		return c.forwardRange(ctx, r, fwd)
	}
	return c.fill(ctx, r, fwd)
}

// forwardRange sends a Range request that starts far into an object the
// cache does not hold straight to the origin, Range and all, and streams
// the answer back unstored.
func (c *Cache) forwardRange(ctx context.Context, r *Request, fwd string) (Result, error) {
	out, err := r.NewOut(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)
	}
	resp, err := r.Transport.RoundTrip(out)
	if err != nil {
		return Result{}, fmt.Errorf("cache: fetching a range of %s: %w", r.Key, err)
	}
	c.m.fills.WithLabelValues("range_forwarded").Inc()
	return Result{Response: resp, Fwd: fwd, NotStored: "range"}, nil
}

// joinStream attaches r to a fill of its key that is being streamed to
// disk, when r selects the same variant.
func (c *Cache) joinStream(r *Request) (Result, bool) {
	v, ok := c.streams.Load(r.Key)
	if !ok {
		return Result{}, false
	}
	st := v.(*stream)
	if !st.entry.matchesVary(r.In.Header) {
		return Result{}, false
	}
	body, ok := st.open()
	if !ok {
		return Result{}, false
	}
	c.m.coalesced.Inc()
	c.m.streamReaders.Inc()
	return Result{Entry: st.entry, Body: body, Fwd: "uri-miss", Collapsed: true, TTL: st.entry.Lifetime}, true
}

// Invalidate removes the stored response for key from every tier. A fill
// of key already in flight still answers its waiters but is not stored.
func (c *Cache) Invalidate(key string) {
	c.inval.invalidate(key, c.now())
	c.mem.del(key)
	if c.disk != nil {
		if err := c.disk.Delete(key); err != nil {
			c.log.Warn("disk tier delete failed", "key", key, "err", err)
		}
	}
}

// errNotShared means the fill's response may not be shared: the leader
// streams it, every waiter fetches on its own.
type errNotShared struct{ reason string }

func (e *errNotShared) Error() string { return "cache: response not shareable: " + e.reason }

func (c *Cache) fill(ctx context.Context, r *Request, fwd string) (Result, error) {
	var led bool
	h := new(handoff)
	ch := c.flights.DoChan(r.Key, func() (any, error) {
		led = true
		return c.lead(ctx, r, fwd, h)
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		h.abandon()
		return Result{}, ctx.Err()
	}
	if !led {
		c.m.coalesced.Inc()
	}
	var ns *errNotShared
	switch {
	case errors.As(res.Err, &ns) && led:
		return Result{Response: h.take(), Fwd: fwd, NotStored: ns.reason}, nil
	case errors.As(res.Err, &ns):
		return c.direct(ctx, r, fwd)
	case res.Err != nil:
		return Result{}, res.Err
	}
	fr := res.Val.(*fillResult)
	if !led && !fr.entry.matchesVary(r.In.Header) {
		return c.direct(ctx, r, fwd)
	}
	return c.result(ctx, r, fr, fwd, led)
}

// result turns a fill's outcome into one request's Result.
func (c *Cache) result(ctx context.Context, r *Request, fr *fillResult, fwd string, led bool) (Result, error) {
	age := fr.entry.Age(c.now())
	res := Result{
		Entry:     fr.entry,
		Hit:       fr.hit,
		Fwd:       fwd,
		Stored:    fr.stored && led,
		Collapsed: !led,
		Age:       age,
		TTL:       fr.entry.Lifetime - age,
	}
	if fr.stream != nil {
		body, ok := fr.stream.open()
		if !ok {
			if fr.stream.failed() {
				return Result{}, ErrFillFailed
			}
			// The stream completed before this request attached: its
			// object is on disk now (or already evicted: fetch again).
			if c.disk != nil {
				if dres, _, ok := c.diskLookup(r, ParseRequestDirectives(r.In.Header)); ok {
					dres.Hit, dres.Fwd, dres.Collapsed = false, fwd, !led
					return dres, nil
				}
			}
			return c.direct(ctx, r, fwd)
		}
		if !led {
			c.m.streamReaders.Inc()
		}
		res.Body = body
	}
	return res, nil
}

// direct fetches for one request without joining a flight: a waiter whose
// leader's response could not be shared.
func (c *Cache) direct(ctx context.Context, r *Request, fwd string) (Result, error) {
	h := new(handoff)
	fr, err := c.lead(ctx, r, fwd, h)
	var ns *errNotShared
	switch {
	case errors.As(err, &ns):
		return Result{Response: h.take(), Fwd: fwd, NotStored: ns.reason}, nil
	case err != nil:
		return Result{}, err
	}
	if fr.stream != nil {
		body, ok := fr.stream.open()
		if !ok {
			return Result{}, ErrFillFailed
		}
		age := fr.entry.Age(c.now())
		return Result{Entry: fr.entry, Body: body, Fwd: fwd, Stored: fr.stored, Age: age, TTL: fr.entry.Lifetime - age}, nil
	}
	age := fr.entry.Age(c.now())
	return Result{Entry: fr.entry, Fwd: fwd, Stored: fr.stored, Age: age, TTL: fr.entry.Lifetime - age}, nil
}
