package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/storage"
)

// ErrStaleForbidden is returned when the origin cannot be reached to
// revalidate a stored response that must not be served stale
// (must-revalidate, proxy-revalidate, s-maxage): the edge answers 504
// (RFC 9111 §4.2.4, §5.2.2.2).
var ErrStaleForbidden = errors.New("cache: origin unreachable and the stored response must not be served stale")

// stored is a stored response found for a request.
type stored struct {
	e    *Entry          // metadata; e.Body is set when it is held in memory
	obj  *storage.Object // the open disk object when the body is on disk
	tier int             // the index of the tier it was found in
}

func (st *stored) close() {
	if st.obj != nil {
		st.obj.Close()
		st.obj = nil
	}
}

// Get answers r from the cache or the origin. On success the Result's Body
// is set and the caller must close it. On failure the Result's Fwd still
// says why the origin was asked (FwdStale when a stored response existed
// that could not be served).
//
// A fresh stored response is a hit. A stale one is served at once within
// its stale-while-revalidate window while one background revalidation runs;
// otherwise it is revalidated with a conditional request, and served
// anyway, to the request and to every one waiting on the same fill, when
// the origin fails within its stale-if-error window (see staleOnError).
// Misses for one variant are coalesced into one flight: one origin fetch
// shared by every waiter, each of which may stop waiting without
// cancelling it.
func (c *Cache) Get(ctx context.Context, r *Request) (Result, error) {
	if r.Slice > 0 && (r.In.Method == http.MethodGet || r.In.Method == http.MethodHead) {
		return c.getSliced(ctx, r)
	}
	if c.tracer != nil {
		return c.tracedGet(ctx, r)
	}
	return c.get(ctx, r)
}

// get is Get without its span.
func (c *Cache) get(ctx context.Context, r *Request) (Result, error) {
	dirs := rfc.ParseRequestDirectives(r.In.Header)
	skey, st, found, fwd := c.find(r)
	if found {
		e := st.e
		age := e.Age(c.now())
		ttl := e.Lifetime - age
		switch {
		case dirs.Allows(e.Lifetime, age, e.MustRevalidate, e.NoCache):
			if e.Codings != 0 {
				st = c.pickCoded(st, acceptEncoding(r.In.Header))
			}
			if res, ok := c.serve(&st, Result{Hit: true, Age: age, TTL: ttl, Strip: e.NoCacheFields}); ok {
				return res, nil
			}
			found, fwd = false, FwdURIMiss // it failed verification and is gone
		case c.mayRevalidateLater(e, age, dirs):
			if e.Codings != 0 {
				st = c.pickCoded(st, acceptEncoding(r.In.Header))
			}
			if res, ok := c.serve(&st, Result{Hit: true, Age: age, TTL: ttl, Detail: DetailStaleWhileRevalidate, Strip: e.NoCacheFields}); ok {
				c.revalidateAsync(ctx, r, skey, e)
				return res, nil
			}
			found, fwd = false, FwdURIMiss
		case ttl > 0 && !e.NoCache:
			fwd = FwdRequest
		default:
			fwd = FwdStale
		}
	}
	if !found {
		if f := c.flights.lookup(skey); f != nil {
			// A fill of this variant is still writing its body: read along.
			if res, err, ok := c.readAlong(f, r); ok {
				return res, err
			}
		}
	}
	if dirs.OnlyIfCached {
		st.close()
		return Result{}, ErrOnlyIfCached
	}
	var stale *Entry
	if found {
		stale = st.e
		st.close() // the flight reopens it if it is served after all
	} else if c.rangeFwd > 0 && r.RangeStart > c.rangeFwd {
		return c.forwardRange(ctx, r, fwd)
	}
	return c.fill(ctx, r, skey, fwd, stale, true)
}

// Hit looks key up for a server's fast path. It returns what Get returns
// for a request without Cache-Control, Pragma or Authorization fields and
// with the Accept-Encoding value acceptEncoding ("" for none) when that is
// a fresh hit on an entry without Vary or fields to strip (Result.Strip
// is always nil), and false otherwise: the caller then asks Get, which
// decides every other case. The caller must Close the result's Body.
func (c *Cache) Hit(key, acceptEncoding string) (Result, bool) {
	st, ok := c.load(key, key)
	if !ok {
		return Result{}, false
	}
	e := st.e
	age := e.Age(c.now())
	if e.Marker || len(e.Vary) > 0 || e.NoCache || len(e.NoCacheFields) > 0 || age >= e.Lifetime {
		st.close()
		return Result{}, false
	}
	st = c.pickCoded(st, acceptEncoding)
	return c.serve(&st, Result{Hit: true, Age: age, TTL: e.Lifetime - age})
}

// mayRevalidateLater reports whether a stale entry may be served now while
// it is revalidated in the background (RFC 5861 §3): within its
// stale-while-revalidate window, when nothing forbids stale responses and
// the request does not ask for a fresh one.
func (c *Cache) mayRevalidateLater(e *Entry, age time.Duration, dirs rfc.RequestDirectives) bool {
	return age >= e.Lifetime && age-e.Lifetime <= e.StaleWhileRevalidate && e.StaleWhileRevalidate > 0 &&
		!e.MustRevalidate && !e.NoCache && !dirs.NoCache && !dirs.HasMaxAge && !dirs.HasMinFresh
}

// find resolves r to the key its variant is stored under and what is
// stored there. When nothing is, fwd says why ("uri-miss", "vary-miss").
func (c *Cache) find(r *Request) (skey string, st stored, found bool, fwd Fwd) {
	top, ok := c.load(r.Key, r.Key)
	if !ok {
		return r.Key, stored{}, false, FwdURIMiss
	}
	if !top.e.Marker {
		if !top.e.matchesVary(r.In.Header) {
			top.close()
			return r.Key, stored{}, false, FwdVaryMiss
		}
		return r.Key, top, true, FwdNone
	}
	skey = variantKey(top.e, r.In.Header)
	if v, ok := c.load(skey, r.Key); ok {
		return skey, v, true, FwdNone
	}
	return skey, stored{}, false, FwdVaryMiss
}

// markerKey is the disk key of primary's Vary marker: the primary key and
// one NUL (variant keys continue after that NUL with the marker id).
func markerKey(primary string) string { return primary + "\x00" }

// isMarkerKey reports whether a disk key is a marker's.
func isMarkerKey(k string) bool { return strings.IndexByte(k, 0) == len(k)-1 }

// serve completes res with a stored response's body. A disk object small
// enough for memory is read, verified and promoted; a larger one is
// verified whole (up to VerifyLimit, then sent with sendfile) or block by
// block as it streams. ok is false when verification failed: the store has
// dropped the object and the request is a miss.
func (c *Cache) serve(st *stored, res Result) (Result, bool) {
	e := st.e
	res.Entry, res.Tier = e, st.tier
	obj := st.obj
	if obj == nil {
		c.admitOnHit(e)
		res.Body = (*memBody)(&e.Body)
		return res, true
	}
	st.obj = nil
	if obj.Size() <= c.mem.maxObject {
		if !c.readIntoMemory(e, obj, c.tierList()[:st.tier]) {
			return Result{}, false
		}
		res.Body = (*memBody)(&e.Body)
		return res, true
	}
	if obj.Size() <= c.verifyLimit && !obj.Packed() { // a packed body has no file to send
		if err := obj.Verify(); err != nil {
			obj.Close()
			c.log.Warn("disk object failed verification", "key", e.Key, "err", err)
			return Result{}, false
		}
		res.Body = &diskBody{obj: obj, verified: true}
		return res, true
	}
	res.Body = &diskBody{obj: obj}
	return res, true
}

// readIntoMemory reads a small disk object into e.Body, verified, closes
// it and promotes e to the tiers above the one it came from. It reports
// false when verification failed (the store has dropped the object).
func (c *Cache) readIntoMemory(e *Entry, obj *storage.Object, above []tier) bool {
	body, err := obj.ReadAll()
	obj.Close()
	if err != nil {
		c.log.Warn("disk object failed verification", "key", e.Key, "err", err)
		return false
	}
	e.Body = body
	if c.promote(e, above) {
		c.m.promotions.Inc()
	}
	return true
}

// readAlong attaches r to a published flight of its variant (one whose
// body is still being written), taking over the caller's reference. ok is
// false when the flight's response cannot be shared with r.
func (c *Cache) readAlong(f *flight, r *Request) (res Result, err error, ok bool) {
	if !f.shared || !f.head.matchesVary(r.In.Header) {
		f.leave()
		return Result{}, nil, false
	}
	c.m.coalesced.Inc()
	res, err = c.answer(f, r, false, FwdURIMiss)
	return res, err, true
}

// fill fetches r's variant from the origin (revalidating stale when set):
// coalesced, it leads or joins the flight for skey; otherwise (a waiter
// whose flight could not be shared with it) it runs a flight of its own.
func (c *Cache) fill(ctx context.Context, r *Request, skey string, fwd Fwd, stale *Entry, coalesce bool) (Result, error) {
	f, led := newFlight(), true
	if coalesce {
		f, led = c.flights.join(skey)
	}
	if led {
		f.retain() // the fill's, dropped by publish (or by a stream's pump)
		// A HEAD that must wait for a revalidation asks with HEAD: the body
		// is not needed, and a 304 or a matching 200 freshens the entry
		// for every reader (RFC 9111 §4.3.5).
		go c.lead(ctx, f, skey, r, stale, stale != nil && r.In.Method == http.MethodHead)
	} else {
		c.m.coalesced.Inc() // counted on joining: the event tests wait on
		if c.tracer != nil {
			f.joined.Add(1)
		}
	}
	if err := f.wait(ctx); err != nil {
		f.leave()
		return Result{Fwd: fwd}, err
	}
	if !led && c.tracer != nil {
		linkFill(ctx, f)
	}
	switch {
	case f.out.err != nil:
		f.leave()
		if !led {
			return Result{Fwd: fwd}, f.out.err
		}
		return Result{Fwd: fwd, Upstream: f.out.upstream}, f.out.err
	case !led && (!f.shared || !f.head.matchesVary(r.In.Header)):
		f.leave()
		return c.fill(ctx, r, skey, fwd, stale, false)
	case !led && stale != nil && f.stream != nil && f.head.Timing.ResponseTime.Equal(stale.Timing.ResponseTime):
		// The streamed fill that stored the very response found stale, not
		// out of the table yet (a stream leaves it just after its commit):
		// its answer is what needs revalidating. Seen in CI under load. (A
		// flight that serves the stale entry on an origin error is no
		// stream, and is joined as any.)
		f.leave()
		return c.fill(ctx, r, skey, fwd, stale, false)
	}
	return c.answer(f, r, led, fwd)
}

// answer is a published flight's answer to one of its readers (r): its
// own body cursor and the outcome, seen from the leader or a joiner; a
// stored response's compressed variant when r accepts one.
func (c *Cache) answer(f *flight, r *Request, led bool, fwd Fwd) (Result, error) {
	body, err := f.body()
	if err != nil {
		return Result{}, err
	}
	if !led && f.stream != nil {
		c.m.streamReaders.Inc()
	}
	res := Result{Body: body, Hit: f.out.hit, Fwd: fwd, Stored: f.out.stored && led, Collapsed: !led,
		FwdStatus: f.out.fwdStatus, Detail: f.out.detail, NotStored: f.out.notStored, Peer: f.out.peer}
	if res.Detail.StaleOnError() {
		c.m.staleOnError.WithLabelValues(staleReasons[res.Detail]).Inc()
	}
	if led {
		res.Upstream = f.out.upstream
	}
	if f.out.live != nil {
		res.Response = f.out.live
		return res, nil
	}
	if !led || !f.out.validated {
		res.Strip = f.head.NoCacheFields // a waiter, a re-check, a stale answer
	}
	res.Entry, res.Age = f.head, f.head.Age(c.now())
	res.TTL = f.head.Lifetime - res.Age
	if f.head.Codings != 0 {
		c.answerCoded(&res, r)
	}
	return res, nil
}

// answerCoded replaces the identity entry of res with the compressed
// variant r negotiates, when one is stored for the same response.
func (c *Cache) answerCoded(res *Result, r *Request) {
	id := stored{e: res.Entry}
	alt := c.pickCoded(id, acceptEncoding(r.In.Header))
	if alt.e == res.Entry {
		return
	}
	if coded, ok := c.serve(&alt, *res); ok {
		res.Body.Close()
		*res = coded
	}
}

// staleReasons are the reason labels of edged_cache_stale_on_error_total.
var staleReasons = [...]string{
	DetailOriginError:       "origin_error",
	DetailOriginUnreachable: "origin_unreachable",
	DetailOriginTimeout:     "origin_timeout",
}

// revalidateAsync refreshes a stale entry in the background, once per
// variant however many requests ask (RFC 5861 §3). Nobody reads the
// answer: the flight's reference is dropped at once.
func (c *Cache) revalidateAsync(ctx context.Context, r *Request, skey string, stale *Entry) {
	f, led := c.flights.join(skey)
	if led {
		c.m.revalidations.WithLabelValues("background").Inc()
		f.retain() // the fill's
		// Always a GET, for a HEAD too: a changed response is stored at once.
		go c.lead(ctx, f, skey, r, stale, false)
	}
	f.leave()
}

// forwardRange sends a Range request that starts far into an object the
// cache does not hold straight to the origin, Range and all, and streams
// the answer back unstored.
func (c *Cache) forwardRange(ctx context.Context, r *Request, fwd Fwd) (Result, error) {
	out, err := r.Out.NewOut(ctx, Fetch{PassConditionals: true})
	if err != nil {
		return Result{Fwd: fwd}, fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)
	}
	resp, upstream, err := r.Origin.Send(out, r.RouteKey)
	if err != nil {
		return Result{Fwd: fwd, Upstream: upstream}, fmt.Errorf("cache: fetching a range of %s: %w", r.Key, err)
	}
	c.m.fills.WithLabelValues("range_forwarded").Inc()
	body := LiveBody(resp)
	resp.Body = nil
	return Result{Response: resp, Body: body, Fwd: fwd, NotStored: "range", FwdStatus: resp.StatusCode, Upstream: upstream, Peer: peerOf(upstream)}, nil
}
