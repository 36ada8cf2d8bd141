// Package cache is edged's HTTP cache: its tiers (memory, then disk), the
// coalesced origin fills (flights), purge and invalidation. The RFC 9111
// decisions it applies come from the stateless package cache/rfc.
//
// The cache fetches from origins only through the Origin a Request carries;
// it never knows about shards or pools. It writes nothing to clients: it
// returns a Result, and the edge package turns it into a response and the
// Cache-Status header.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
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
	// TagHeaders are the response fields purge tags are read from. Nil
	// means Surrogate-Key and Cache-Tag.
	TagHeaders []string
	// WriteBehind bounds the background copies of memory-filled entries to
	// the disk tier pending at once; beyond it, or beyond
	// WriteBehindBytes, a copy is skipped. Zero means 1024.
	WriteBehind int
	// WriteBehindBytes bounds the body bytes those pending copies hold in
	// memory (a body memory did not keep is held only by its copy). Zero
	// means 64 MiB.
	WriteBehindBytes int64
	// DiskAdmission decides which fills the disk tier takes: "always"
	// (every storable fill; "" means this), "second-hit" (an object's
	// second request within DiskAdmitWindow requests, counted on fills and
	// on memory hits; larger bodies, see DiskAdmitLargerThan, at once) or
	// "off" (nothing new; what is on disk is still served). Objects not
	// admitted are served to every waiter of their fill and kept in
	// memory as ristretto admits them.
	DiskAdmission string
	// DiskAdmitLargerThan: with "second-hit", bodies larger than this, and
	// streamed ones of unknown length, are admitted on their first
	// request. Zero means 1 MiB.
	DiskAdmitLargerThan int64
	// DiskAdmitWindow is how many counted requests the doorkeeper
	// remembers: its counters are halved every DiskAdmitWindow requests.
	// Zero means 1<<20.
	DiskAdmitWindow int
	// Tracer, when set, records a span for each Get (the lookup, child of
	// the span in Get's context) and one for each origin fill a flight
	// leads (trace.go). Nil (the default) traces nothing and costs
	// nothing.
	Tracer trace.Tracer
}

// Cache is a shared HTTP cache. It is safe for concurrent use.
type Cache struct {
	mem     *memoryTier            // also tiers[0]
	tiers   atomic.Pointer[[]tier] // lookup order; AttachDisk appends
	reg     prometheus.Registerer
	flights flightTable
	attach  sync.Mutex // serializes AttachDisk; guards warm, warmClosed
	// warm is the running or finished warm start; warmClosed is set by
	// Close, after which none starts.
	warm       *warmState
	warmClosed bool
	inval      invalidations
	gate       sync.RWMutex // orders stores against invalidations: see unlessInvalidated
	// beforePromote, when set (tests only), runs between a disk-tier read
	// and its copy into memory.
	beforePromote func()
	diskErr       diskErrors
	writeQ        writeQueue
	writeBatch    batchWindow
	writers       sync.WaitGroup
	verifyLimit   int64
	rangeFwd      int64
	tagHeaders    []string
	m             *metrics
	door          *doorkeeper // the disk tier's admission (admit.go)
	slices        *sliceState // sliced objects (slice.go)
	fillTimeout   time.Duration
	tracer        trace.Tracer // nil: tracing off
	log           *slog.Logger
	now           func() time.Time

	// beforeWriteBehind, when set (tests only), runs as a write-behind
	// copy starts.
	beforeWriteBehind func()
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
		cfg.WriteBehind = 1024
	}
	if cfg.WriteBehindBytes == 0 {
		cfg.WriteBehindBytes = 64 << 20
	}
	if cfg.TagHeaders == nil {
		cfg.TagHeaders = []string{"Surrogate-Key", "Cache-Tag"}
	}
	if cfg.DiskAdmitLargerThan == 0 {
		cfg.DiskAdmitLargerThan = 1 << 20
	}
	if cfg.DiskAdmitWindow == 0 {
		cfg.DiskAdmitWindow = 1 << 20
	}
	// A body memory cannot hold is admitted at once: otherwise no tier
	// would keep it, nor share it with the fill's waiters.
	door, err := newDoorkeeper(cfg.DiskAdmission, min(cfg.DiskAdmitLargerThan, cfg.MaxObjectBytes), cfg.DiskAdmitWindow)
	if err != nil {
		return nil, err
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
	slices, err := newSliceState(cfg.Registerer)
	if err != nil {
		return nil, err
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
	c := &Cache{
		mem:         mem,
		reg:         cfg.Registerer,
		inval:       invalidations{ttl: 2 * cfg.FillTimeout},
		writeQ:      writeQueue{maxN: cfg.WriteBehind, maxBytes: cfg.WriteBehindBytes},
		writeBatch:  batchWindow{linger: writeBatchLinger, max: writeBatchMax},
		verifyLimit: cfg.VerifyLimit,
		rangeFwd:    cfg.RangeForwardOffset,
		tagHeaders:  cfg.TagHeaders,
		m:           m,
		door:        door,
		slices:      slices,
		fillTimeout: cfg.FillTimeout,
		tracer:      cfg.Tracer,
		log:         cfg.Logger,
		now:         cfg.Now,
	}
	c.tiers.Store(&[]tier{memTier{mem}})
	if cfg.Disk != nil {
		c.addTier(diskTier{c: c, s: cfg.Disk})
	}
	return c, nil
}

// AttachDisk adds a disk tier below memory to a cache built without one,
// once: a process taking over from another during a zero-downtime upgrade
// serves from memory until the old process releases the data directory.
func (c *Cache) AttachDisk(d *storage.Store) error {
	c.attach.Lock()
	defer c.attach.Unlock()
	if c.streamTier() != nil {
		return errors.New("cache: a disk tier is already attached")
	}
	c.addTier(diskTier{c: c, s: d})
	if c.reg != nil {
		if err := c.reg.Register(newDiskCollector(d)); err != nil {
			return fmt.Errorf("cache: registering disk metrics: %w", err)
		}
	}
	return nil
}

// Close waits for pending disk writes and releases the memory tier. Fills
// still streaming finish on their own (bounded by FillTimeout).
func (c *Cache) Close() {
	c.stopWarm()
	c.writers.Wait()
	c.mem.close()
}

// Origin sends a request to the origin servers. It is the seam between the
// cache (and the edge's pass-through) and the load balancer: *lb.Pool
// implements it.
type Origin interface {
	// Send sends out, choosing the origin server by routeKey (empty: the
	// origin derives one from out), and returns the response with the name
	// of the server that answered, or on error the last one tried (empty
	// when the origin does not name servers).
	Send(out *http.Request, routeKey string) (resp *http.Response, upstream string, err error)
}

// PeerPrefix begins the upstream name an Origin returns when another cache
// of the PoP (a peer owning the key) answered a fill instead of an origin
// server: "peer:edged-b". The cache then asks Request.Replicas whether to
// store the answer, and Result.Peer names the peer.
const PeerPrefix = "peer:"

// Replicas decides which answers of a peer a node keeps (Request.Replicas):
// the keys hot at this node, so that the hottest objects are served
// locally by every node of a PoP and the long tail is stored once.
type Replicas interface {
	// Admit records a fill of key answered by a peer and reports whether
	// the answer is stored here.
	Admit(key string) bool
}

// Fetch is what the cache asks of the origin request for one fill: the
// fields that make it differ from the client's request.
type Fetch struct {
	// ETag and LastModified, when set, are the validators of a stored
	// response being revalidated (RFC 9111 §4.3.1): they become
	// If-None-Match and If-Modified-Since.
	ETag, LastModified string
	// Head asks with HEAD instead of GET: a HEAD request revalidating a
	// stored response, whose body it does not need (RFC 9111 §4.3.5).
	Head bool
	// PassConditionals forwards the client's Range and conditional fields
	// (If-Range, If-None-Match, ...) as they are: a range the cache
	// forwards instead of filling, whose answer goes to this client alone.
	// Otherwise a fill asks for the whole representation, without them.
	PassConditionals bool
	// Range, when set, is the Range field of a slice fill ("bytes=A-B",
	// see Request.Slice), which asks for the identity coding
	// (Accept-Encoding: identity): slices are byte ranges of one
	// representation. It goes with the validators of a revalidation.
	Range string
}

// OutBuilder builds the request a miss sends to the origin (Request.Out):
// the one place the client's request becomes the origin's. It is an
// interface rather than a func field so that a caller can pass per-request
// state it has already allocated, without a closure per hit.
type OutBuilder interface {
	NewOut(ctx context.Context, f Fetch) (*http.Request, error)
}

// OutBuilderFunc adapts a function to OutBuilder.
type OutBuilderFunc func(ctx context.Context, f Fetch) (*http.Request, error)

// NewOut calls fn(ctx, f).
func (fn OutBuilderFunc) NewOut(ctx context.Context, f Fetch) (*http.Request, error) {
	return fn(ctx, f)
}

// Request is one cacheable client request.
type Request struct {
	// Key is the primary cache key (rfc.KeyFor, or a lifecycle hook's
	// choice).
	Key string
	// In is the client's request: its headers select Vary variants and carry
	// the request Cache-Control directives and Authorization.
	In *http.Request
	// Out builds the GET request to send to the origin. It is called only
	// on a miss, at most once per fill, possibly on another goroutine, with
	// the fill's context: detached from the client's cancellation but
	// keeping its values. An error fails the fill.
	Out OutBuilder
	// Origin reaches the origin servers, and RouteKey chooses among them.
	Origin   Origin
	RouteKey string
	// Policy holds the site's freshness knobs.
	Policy rfc.Policy
	// RangeStart is the first byte the client's Range asks for, or -1
	// (no Range, a suffix range, or several ranges).
	RangeStart int64
	// Compress compresses what the fill stores, when it applies, into
	// variants served by Accept-Encoding (see compress.go); nil compresses
	// nothing. Compressed variants already stored are served whatever it
	// is.
	Compress *coding.Compressor
	// Slice, when positive, serves the request from fixed-size slices of
	// the object (slice.go, docs/caching.md "Slices"): each Slice bytes,
	// fetched with a Range request and stored as an entry of its own. It
	// applies to GET and HEAD; zero serves whole objects.
	Slice int64
	// Site names the request's site in the slice metric; may be empty.
	Site string
	// slice is set on the request of one slice fill (slice.go).
	slice *sliceSpec
	// Replicas, when set, decides whether a storable answer from a peer
	// (an upstream named with PeerPrefix) to a fill that is not a
	// revalidation is stored; when it says no, the answer still goes to
	// every reader of the fill, but no tier keeps it. Nil stores it.
	Replicas Replicas
}

// Fwd is why the origin was contacted for a response (RFC 9211 fwd).
type Fwd uint8

// The fwd reasons of Result.
const (
	FwdNone     Fwd = iota // a hit: the origin was not contacted
	FwdURIMiss             // nothing stored for the URI
	FwdVaryMiss            // stored, but not for this request's Vary values
	FwdStale               // stored and stale
	FwdRequest             // stored and fresh, but the request asked for a fresh answer
	FwdPartial             // a sliced object: some of the slices it needs were stored, others fetched
)

var fwdNames = [...]string{"", "uri-miss", "vary-miss", "stale", "request", "partial"}

// String is the RFC 9211 token.
func (f Fwd) String() string { return fwdNames[f] }

// Detail is extra Cache-Status detail about a stored response served.
type Detail uint8

// The details of Result. The Origin* ones say why a stale stored response
// was served because the origin failed (stale-if-error, RFC 5861 §4, or
// the site's default window).
const (
	DetailNone                 Detail = iota
	DetailStaleWhileRevalidate        // served stale while a background revalidation runs
	DetailOriginError                 // the origin answered 500, 502, 503 or 504
	DetailOriginUnreachable           // no complete answer: refused, reset, truncated
	DetailOriginTimeout               // the origin did not answer within the fill timeout
	DetailSlices                      // a sliced object, served from its slices (slice.go)
)

var detailNames = [...]string{"", "stale-while-revalidate", "origin-error", "origin-unreachable", "origin-timeout", "slices"}

// String is the Cache-Status detail token.
func (d Detail) String() string { return detailNames[d] }

// StaleOnError reports whether d says a stale response was served because
// the origin failed.
func (d Detail) StaleOnError() bool { return d >= DetailOriginError && d <= DetailOriginTimeout }

// Result is how a request was answered.
type Result struct {
	// Entry is the stored (or just filled and shared) response served: its
	// status and header. Nil when Response is set.
	Entry *Entry
	// Response is the head of an origin response passed through without
	// being stored (Response.Body is nil: the body is Body).
	Response *http.Response
	// Body is the body, whatever holds it. It is set whenever Get returns
	// no error, and the caller must Close it.
	Body Body
	// Hit reports that no origin was contacted.
	Hit bool
	// Fwd is the RFC 9211 fwd reason when the origin was contacted. It is
	// also set when Get fails because the origin did: FwdStale when a
	// stored response existed but could not be served.
	Fwd Fwd
	// Stored reports that this request's fill stored the response.
	Stored bool
	// Collapsed reports that the request joined another request's fill.
	Collapsed bool
	// NotStored is why the response was not stored: an rfc.Decision
	// Reason, "too-large", "range" or "head" (the answer to a HEAD
	// revalidation that did not match the stored response).
	NotStored string
	// FwdStatus is the status code the origin sent, when it was contacted
	// for this response (RFC 9211 fwd-status); 0 otherwise.
	FwdStatus int
	// Detail says when a stale entry was served, and why: in the
	// background of a revalidation, or because the origin failed (then Fwd
	// is FwdStale, and FwdStatus the origin's 5xx, if it answered).
	Detail Detail
	// Strip names the fields of Entry that must not be sent: its
	// qualified no-cache fields (RFC 9111 §5.2.2.4) whenever the entry is
	// reused without having been validated for this request, that is to
	// everyone but the request whose own fill or revalidation the origin
	// just answered. Nil when nothing is withheld; the caller must not
	// modify it.
	Strip []string
	// Upstream names the origin server that answered this request's own
	// fill (or was last tried, with an error); empty for hits and joined
	// fills.
	Upstream string
	// Tier is the index of the tier a hit was found in: 0 the memory
	// tier, 1 the disk tier (a small disk object is read into memory and
	// promoted, but it still counts as the disk's hit).
	Tier int
	// Peer names the peer of the PoP that answered the fill this request
	// led or joined (its upstream without PeerPrefix); empty otherwise.
	Peer string
	// Age and TTL describe Entry at the time of the lookup; TTL is
	// negative for a stale entry.
	Age, TTL time.Duration
}
