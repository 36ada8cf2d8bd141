package cache

import (
	"context"
	"errors"
	"fmt"
	"github.com/edged-proxy/edged/cache/rfc"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/edged-proxy/edged/storage"
)

// ErrStaleForbidden is returned when the origin cannot be reached to
// revalidate a stored response that must not be served stale
// (must-revalidate, proxy-revalidate, s-maxage): the edge answers 504
// (RFC 9111 §4.2.4, §5.2.2.2).
var ErrStaleForbidden = errors.New("cache: origin unreachable and the stored response must not be served stale")

// stored is a stored response found for a request.
type stored struct {
	e   *Entry          // metadata; e.Body is set when it is held in memory
	obj *storage.Object // the open disk object when the body is on disk
}

func (st *stored) close() {
	if st.obj != nil {
		st.obj.Close()
		st.obj = nil
	}
}

// Get answers r from the cache or the origin.
//
// A fresh stored response is a hit. A stale one is served at once within
// its stale-while-revalidate window while one background revalidation runs;
// otherwise it is revalidated with a conditional request, and served again
// within its stale-if-error window if the origin fails. Misses for one
// variant are coalesced: one origin fetch shared by every waiter, each of
// which may stop waiting without cancelling it.
func (c *Cache) Get(ctx context.Context, r *Request) (Result, error) {
	dirs := rfc.ParseRequestDirectives(r.In.Header)
	skey, st, found, fwd := c.find(r)
	if found {
		e := st.e
		age := e.Age(c.now())
		ttl := e.Lifetime - age
		switch {
		case dirs.Allows(e.Lifetime, age, e.MustRevalidate, e.NoCache):
			if res, ok := c.serve(&st, Result{Hit: true, Age: age, TTL: ttl}); ok {
				return res, nil
			}
			found, fwd = false, "uri-miss" // it failed verification and is gone
		case c.mayRevalidateLater(e, age, dirs):
			if res, ok := c.serve(&st, Result{Hit: true, Age: age, TTL: ttl, Detail: "stale-while-revalidate"}); ok {
				c.revalidateAsync(ctx, r, skey, e)
				return res, nil
			}
			found, fwd = false, "uri-miss"
		case ttl > 0 && !e.NoCache:
			fwd = "request"
		default:
			fwd = "stale"
		}
	}
	if !found {
		if res, ok := c.joinStream(r, skey); ok {
			return res, nil
		}
	}
	if dirs.OnlyIfCached {
		st.close()
		return Result{}, ErrOnlyIfCached
	}
	var stale *Entry
	if found {
		stale = st.e
		st.close() // reopened if the stale entry is served after all
	} else if c.rangeFwd > 0 && r.RangeStart > c.rangeFwd {
		return c.forwardRange(ctx, r, fwd)
	}
	return c.fill(ctx, r, skey, fwd, stale)
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
func (c *Cache) find(r *Request) (skey string, st stored, found bool, fwd string) {
	top, ok := c.load(r.Key, r.Key)
	if !ok {
		return r.Key, stored{}, false, "uri-miss"
	}
	if !top.e.Marker {
		if !top.e.matchesVary(r.In.Header) {
			top.close()
			return r.Key, stored{}, false, "vary-miss"
		}
		return r.Key, top, true, ""
	}
	skey = variantKey(top.e, r.In.Header)
	if v, ok := c.load(skey, r.Key); ok {
		return skey, v, true, ""
	}
	return skey, stored{}, false, "vary-miss"
}

// load looks key up in memory, then on disk. A primary key's Vary marker
// is kept under the primary key in memory and under markerKey on disk;
// markers found on disk are copied to memory.
func (c *Cache) load(key, primary string) (stored, bool) {
	if e, ok := c.mem.get(key); ok {
		return stored{e: e}, true
	}
	if c.diskTier() == nil {
		return stored{}, false
	}
	st, ok := c.loadDisk(key, primary)
	if !ok && key == primary {
		st, ok = c.loadDisk(markerKey(primary), primary)
	}
	return st, ok
}

// markerKey is the disk key of primary's Vary marker: the primary key and
// one NUL (variant keys continue after that NUL with the marker id).
func markerKey(primary string) string { return primary + "\x00" }

// isMarkerKey reports whether a disk key is a marker's.
func isMarkerKey(k string) bool { return strings.IndexByte(k, 0) == len(k)-1 }

func (c *Cache) loadDisk(key, primary string) (stored, bool) {
	obj, err := c.diskTier().Get(key)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			c.warnDisk("disk tier lookup failed", "key", key, "err", err)
		}
		return stored{}, false
	}
	e, err := decodeEntry(obj.Meta.Header)
	if err != nil {
		obj.Close()
		c.log.Warn("dropping undecodable disk entry", "key", key, "err", err)
		c.diskTier().Delete(key)
		return stored{}, false
	}
	e.Key, e.Primary = key, primary
	if e.Marker {
		obj.Close()
		e.Key = primary
		c.promote(e)
		return stored{e: e}, true
	}
	return stored{e: e, obj: obj}, true
}

// promote copies an entry read from the disk tier into memory, unless an
// invalidation of it is on record. A purge records itself, scans memory,
// then deletes from disk: a disk read that came before the delete and a
// copy into memory after the scan would put the purged object back in
// memory for good. Under the gate, either the copy lands before the
// record (and the purge's scan finds it) or it sees the record and is
// dropped; any retained record counts (start 0), because the disk read
// may postdate the record yet predate the delete. It reports whether e was
// stored.
func (c *Cache) promote(e *Entry) bool {
	if c.beforePromote != nil {
		c.beforePromote()
	}
	stored := false
	c.unlessInvalidated(e, 0, func() { stored = c.mem.set(e) })
	return stored
}

// serve completes res with a stored response's body. A disk object small
// enough for memory is read, verified and promoted; a larger one is
// verified whole (up to VerifyLimit, then sent with sendfile) or block by
// block as it streams. ok is false when verification failed: the store has
// dropped the object and the request is a miss.
func (c *Cache) serve(st *stored, res Result) (Result, bool) {
	e := st.e
	res.Entry = e
	obj := st.obj
	if obj == nil {
		return res, true
	}
	st.obj = nil
	size := obj.Size()
	switch {
	case size <= c.mem.maxObject:
		body, err := io.ReadAll(obj.NewReader(0, size))
		obj.Close()
		if err != nil {
			c.log.Warn("disk object failed verification", "key", e.Key, "err", err)
			return Result{}, false
		}
		e.Body = body
		if c.promote(e) {
			c.m.promotions.Inc()
		}
	case size <= c.verifyLimit:
		if err := obj.Verify(); err != nil {
			obj.Close()
			c.log.Warn("disk object failed verification", "key", e.Key, "err", err)
			return Result{}, false
		}
		res.Body = &diskBody{obj: obj, verified: true}
	default:
		res.Body = &diskBody{obj: obj}
	}
	return res, true
}

// joinStream attaches r to a fill of its variant that is being streamed to
// disk.
func (c *Cache) joinStream(r *Request, skey string) (Result, bool) {
	v, ok := c.streams.Load(skey)
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

// errNotShared means the fill's response may not be shared: the leader
// streams it, every waiter fetches on its own.
type errNotShared struct{ reason string }

func (e *errNotShared) Error() string { return "cache: response not shareable: " + e.reason }

// fill fetches r's variant from the origin (revalidating stale when set),
// coalesced with every other request for skey.
func (c *Cache) fill(ctx context.Context, r *Request, skey, fwd string, stale *Entry) (Result, error) {
	var led bool
	h := new(handoff)
	ch := c.flights.DoChan(skey, func() (any, error) {
		led = true
		return c.lead(ctx, r, fwd, stale, h)
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
		return Result{Response: h.take(), Fwd: fwd, NotStored: ns.reason, FwdStatus: h.status}, nil
	case errors.As(res.Err, &ns):
		return c.direct(ctx, r, fwd, stale)
	case res.Err != nil:
		return Result{}, res.Err
	}
	fr := res.Val.(*fillResult)
	if !led && !fr.entry.matchesVary(r.In.Header) {
		return c.direct(ctx, r, fwd, stale)
	}
	return c.result(ctx, r, fr, fwd, led)
}

// direct fetches for one request without joining a flight: a waiter whose
// leader's response could not be shared with it.
func (c *Cache) direct(ctx context.Context, r *Request, fwd string, stale *Entry) (Result, error) {
	h := new(handoff)
	fr, err := c.lead(ctx, r, fwd, stale, h)
	var ns *errNotShared
	switch {
	case errors.As(err, &ns):
		return Result{Response: h.take(), Fwd: fwd, NotStored: ns.reason, FwdStatus: h.status}, nil
	case err != nil:
		return Result{}, err
	}
	return c.result(ctx, r, fr, fwd, true)
}

// result turns a fill's outcome into one request's Result.
func (c *Cache) result(ctx context.Context, r *Request, fr *fillResult, fwd string, led bool) (Result, error) {
	age := fr.entry.Age(c.now())
	res := Result{
		Hit:       fr.hit,
		Fwd:       fwd,
		Stored:    fr.stored && led,
		Collapsed: !led,
		FwdStatus: fr.fwdStatus,
		Detail:    fr.detail,
		Age:       age,
		TTL:       fr.entry.Lifetime - age,
	}
	switch {
	case fr.stream != nil:
		body, ok := fr.stream.open()
		if !ok {
			if fr.stream.failed() {
				return Result{}, ErrFillFailed
			}
			// The stream completed before this request attached: its
			// object is on disk now (or already evicted: fetch again).
			if st, ok := c.load(fr.entry.Key, r.Key); ok {
				if out, ok := c.serve(&st, res); ok {
					return out, nil
				}
			}
			return c.direct(ctx, r, fwd, nil)
		}
		if !led {
			c.m.streamReaders.Inc()
		}
		res.Entry, res.Body = fr.entry, body
	case fr.entry.Body == nil:
		// A disk-resident entry: found by the re-check, refreshed by a
		// 304, or served stale after an origin error. Reopen its body.
		st, ok := c.load(fr.entry.Key, r.Key)
		if !ok || st.obj == nil {
			st.close()
			return Result{}, fmt.Errorf("%w: %s left the disk tier", ErrFillFailed, fr.entry.Key)
		}
		st.e = fr.entry
		out, ok := c.serve(&st, res)
		if !ok {
			return Result{}, fmt.Errorf("%w: %s failed verification", ErrFillFailed, fr.entry.Key)
		}
		return out, nil
	default:
		res.Entry = fr.entry
	}
	return res, nil
}

// revalidateAsync refreshes a stale entry in the background, once per
// variant however many requests ask (RFC 5861 §3).
func (c *Cache) revalidateAsync(ctx context.Context, r *Request, skey string, stale *Entry) {
	h := new(handoff)
	h.abandon() // nobody streams an unshareable answer: it is discarded
	ch := c.flights.DoChan(skey, func() (any, error) {
		c.m.revalidations.WithLabelValues("background").Inc()
		return c.lead(ctx, r, "stale", stale, h)
	})
	go func() {
		if res := <-ch; res.Err != nil {
			var ns *errNotShared
			if !errors.As(res.Err, &ns) {
				c.log.Info("background revalidation failed", "key", skey, "err", res.Err)
			}
		}
	}()
}

// forwardRange sends a Range request that starts far into an object the
// cache does not hold straight to the origin, Range and all, and streams
// the answer back unstored.
func (c *Cache) forwardRange(ctx context.Context, r *Request, fwd string) (Result, error) {
	out, err := r.Out.NewOut(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)
	}
	resp, err := r.Transport.RoundTrip(out)
	if err != nil {
		return Result{}, fmt.Errorf("cache: fetching a range of %s: %w", r.Key, err)
	}
	c.m.fills.WithLabelValues("range_forwarded").Inc()
	return Result{Response: resp, Fwd: fwd, NotStored: "range", FwdStatus: resp.StatusCode}, nil
}
