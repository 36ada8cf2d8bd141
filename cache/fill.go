package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edged-proxy/edged/cache/rfc"
	"github.com/edged-proxy/edged/internal/httpx"
)

// lead runs flight f: one origin fetch for r, under key skey, detached
// from the leader's cancellation and bounded by FillTimeout. When stale is
// set it revalidates it (RFC 9111 §4.3.1), with a HEAD request when head
// is set (§4.3.5: the body is not fetched). It publishes the head and body
// to every reader of f and stores what may be stored.
func (c *Cache) lead(ctx context.Context, f *flight, skey string, r *Request, stale *Entry, head bool) {
	if c.tracer != nil {
		var end func()
		ctx, end = c.startFill(ctx, f, r, stale, head)
		defer end()
	}
	defer func() {
		if p := recover(); p != nil && !f.published() {
			f.publish(nil, fillOutcome{err: fmt.Errorf("cache: fill of %s panicked: %v", r.Key, p)})
		}
	}()
	if stale == nil {
		// A fill that ended just before this flight began may have stored it.
		if st, ok := c.recheck(r); ok {
			c.publishStored(f, &st, fillOutcome{hit: true})
			return
		}
	}
	start := c.inval.begin()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fillTimeout)
	reqTime := c.now()
	head = head && stale != nil
	resp, upstream, err := c.send(fctx, r, stale, head)
	if err == nil && head && (resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented) {
		// The origin does not do HEAD: revalidate with a GET after all.
		resp.Body.Close()
		head = false
		resp, upstream, err = c.send(fctx, r, stale, false)
	}
	t := fillClock{start, reqTime, c.now()}
	if err != nil {
		cancel()
		c.m.fills.WithLabelValues("error").Inc()
		c.publishError(f, r, stale, err, upstream)
		return
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	out := fillOutcome{fwdStatus: resp.StatusCode, upstream: upstream, validated: true, peer: peerOf(upstream)}
	if stale != nil && c.revalidated(f, r, stale, resp, out, t, head) {
		return
	}
	if r.slice != nil && !r.slice.accept(resp) {
		// Not a slice (a 200 to the Range, a weak ETag, ...): the
		// leader learns it from the live answer (slice.go).
		c.m.fills.WithLabelValues("not_storable").Inc()
		c.publishLive(f, resp, out, "slice")
		return
	}
	d := r.Policy.Evaluate(r.In, asWhole(r, resp))
	if d.Storable && (resp.StatusCode == http.StatusPartialContent && r.slice == nil || resp.StatusCode == http.StatusNotModified) {
		d.Storable, d.Reason = false, "status"
	}
	if !d.Storable {
		c.m.fills.WithLabelValues("not_storable").Inc()
		c.publishLive(f, resp, out, d.Reason)
		return
	}
	if out.peer != "" && stale == nil && r.Replicas != nil && !r.Replicas.Admit(r.Key) {
		// Not hot here: the readers get the peer's answer, no tier keeps it.
		c.fillTransient(f, r, resp, d, out, t)
		return
	}
	if err := c.fillStorable(f, skey, r, resp, d, out, t); err != nil {
		// The body failed before anyone saw it: as if the origin had not
		// answered, so a stale entry may still stand in.
		c.m.fills.WithLabelValues("error").Inc()
		c.publishError(f, r, stale, err, upstream)
	}
}

// fillClock is when a fill started: its invalidation sequence and the
// times its request went out and its response came back.
type fillClock struct {
	start         uint64
	req, response time.Time
}

// fillStorable stores a storable origin response and publishes it to f's
// readers: streamed through a tier that takes streams when it is large or
// of unknown length, otherwise read whole into memory. A response that
// turns out too large for memory, with no tier to stream it, goes to the
// leader alone. A body read whole that fails is returned, f unpublished.
func (c *Cache) fillStorable(f *flight, skey string, r *Request, resp *http.Response, d rfc.Decision, out fillOutcome, t fillClock) error {
	key := r.Key
	if names, _ := parseVary(resp.Header); len(names) > 0 {
		key = variantKey(c.marker(r.Key, names), r.In.Header)
	}
	e := newEntry(r, key, resp, nil, d, rfc.NewTiming(t.req, t.response, resp.Header), resp.ContentLength)
	e.Tags = parseTags(resp.Header, c.tagHeaders)
	// A body of unknown length that may be compressed is read whole first
	// (compression needs all of it), and streamed only if it outgrows
	// memory.
	readFirst := resp.ContentLength < 0 && resp.StatusCode == http.StatusOK && r.Compress.Applies(resp.Header, c.mem.maxObject)
	if resp.ContentLength > c.mem.maxObject || resp.ContentLength < 0 && !readFirst {
		if c.startStream(f, skey, e, resp, out, t) {
			return nil
		}
		if resp.ContentLength > c.mem.maxObject {
			c.m.fills.WithLabelValues("too_large").Inc()
			c.publishLive(f, resp, out, "too-large")
			return nil
		}
	}
	body, err := readBody(resp, c.mem.maxObject)
	switch {
	case errors.Is(err, errTooLarge) && readFirst && c.startStream(f, skey, e, resp, out, t):
		return nil
	case errors.Is(err, errTooLarge):
		c.m.fills.WithLabelValues("too_large").Inc()
		c.publishLive(f, resp, out, "too-large") // resp.Body now starts over
		return nil
	case err != nil:
		return fmt.Errorf("cache: reading %s from origin: %w", r.Key, err)
	}
	c.m.fillTime.Observe(c.now().Sub(t.req).Seconds())
	e.Body = body
	if resp.ContentLength < 0 { // else newEntry set it, and readBody checked it
		e.Header = withField(e.Header, "Content-Length", itoa(int64(len(body)))) // e is not shared yet
	}
	alts := c.compressFilled(r, e)
	out.stored = c.storeFilled(e, t.start, alts)
	f.publish(e, out)
	return nil
}

// fillTransient publishes a storable answer without storing it: read
// whole into memory and shared with every reader of f when it fits the
// memory tier's object limit, otherwise passed to the leader alone.
func (c *Cache) fillTransient(f *flight, r *Request, resp *http.Response, d rfc.Decision, out fillOutcome, t fillClock) {
	c.m.fills.WithLabelValues("not_admitted").Inc()
	if resp.ContentLength > c.mem.maxObject {
		c.publishLive(f, resp, out, "not-admitted")
		return
	}
	body, err := readBody(resp, c.mem.maxObject)
	switch {
	case errors.Is(err, errTooLarge):
		c.publishLive(f, resp, out, "not-admitted") // resp.Body now starts over
		return
	case err != nil:
		c.publishError(f, r, nil, fmt.Errorf("cache: reading %s from a peer: %w", r.Key, err), out.upstream)
		return
	}
	e := newEntry(r, r.Key, resp, body, d, rfc.NewTiming(t.req, t.response, resp.Header), int64(len(body)))
	e.Tags = parseTags(resp.Header, c.tagHeaders)
	f.publish(e, out)
}

// send builds the origin request of a fill (a conditional one when stale
// is set, a HEAD when head is) and sends it.
func (c *Cache) send(ctx context.Context, r *Request, stale *Entry, head bool) (*http.Response, string, error) {
	fetch := Fetch{Head: head}
	if r.slice != nil {
		fetch.Range = r.slice.rangeValue()
	}
	if stale != nil {
		fetch.ETag, fetch.LastModified = stale.Header.Get("Etag"), stale.Header.Get("Last-Modified")
	}
	out, err := r.Out.NewOut(ctx, fetch)
	if err != nil {
		return nil, "", &buildError{fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)}
	}
	resp, upstream, err := r.Origin.Send(out, r.RouteKey)
	if err != nil {
		return nil, upstream, fmt.Errorf("cache: fetching %s: %w", r.Key, err)
	}
	return resp, upstream, nil
}

// buildError is a failure to build the origin request (a failing hook, say):
// the origin was never asked, so it is not a reason to serve stale.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// recheck looks r up again inside its flight: a fill that ended just
// before the flight began may have stored a usable response.
func (c *Cache) recheck(r *Request) (stored, bool) {
	_, st, found, _ := c.find(r)
	if !found {
		return stored{}, false
	}
	if age := st.e.Age(c.now()); !rfc.ParseRequestDirectives(r.In.Header).Allows(st.e.Lifetime, age, st.e.MustRevalidate, st.e.NoCache) {
		st.close()
		return stored{}, false
	}
	return st, true
}

// publishStored publishes a stored entry as f's answer: its body from
// memory, read into memory when small, or the disk object itself, shared
// by the flight's readers. A disk object that fails verification fails the
// flight.
func (c *Cache) publishStored(f *flight, st *stored, out fillOutcome) {
	e := *st.e // the flight's own copy: readIntoMemory sets Body
	obj := st.obj
	st.obj = nil
	switch {
	case obj == nil:
	case obj.Size() <= c.mem.maxObject:
		if !c.readIntoMemory(&e, obj, c.tierList()[:st.tier]) {
			out.err = fmt.Errorf("%w: %s failed verification", ErrFillFailed, e.Key)
		}
	default:
		f.hold(func() { f.obj = obj })
	}
	if out.err != nil {
		f.publish(nil, out)
		return
	}
	f.publish(&e, out)
}

// publishError publishes a failed fill: for an origin failure, the stale
// entry when it may be served on error (staleOnError); otherwise the error.
func (c *Cache) publishError(f *flight, r *Request, stale *Entry, err error, upstream string) {
	var be *buildError
	if stale != nil && !errors.As(err, &be) {
		detail := DetailOriginUnreachable
		if isTimeout(err) {
			detail = DetailOriginTimeout
		}
		if c.staleOnError(stale) {
			c.publishStale(f, r, stale, fillOutcome{detail: detail, upstream: upstream})
			return
		}
		if stale.MustRevalidate {
			err = fmt.Errorf("%w: %s: %v", ErrStaleForbidden, r.Key, err)
		}
	}
	f.publish(nil, fillOutcome{err: err, upstream: upstream})
}

// isTimeout reports whether a fill failed because the origin took too
// long: the fill's deadline, or a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// publishStale publishes the stale entry itself as f's answer, its body
// reopened from the tier that holds it.
func (c *Cache) publishStale(f *flight, r *Request, stale *Entry, out fillOutcome) {
	if stale.Body != nil {
		f.publish(stale, out)
		return
	}
	st, ok := c.load(stale.Key, r.Key)
	if !ok || st.obj == nil {
		st.close()
		f.publish(nil, fillOutcome{err: fmt.Errorf("%w: %s left the disk tier", ErrFillFailed, stale.Key), upstream: out.upstream})
		return
	}
	st.e = stale
	c.publishStored(f, &st, out)
}

// revalidated handles the origin's answer to a revalidation when it is
// not a new response: a server error (500, 502, 503, 504: RFC 5861 §4)
// serves the stale entry when it may be served on error, and 304
// refreshes the stored entry (RFC 9111 §4.3.4). The answer to a HEAD
// revalidation (head) is never a new response to store: it is handled
// here whatever it is (headAnswered). It reports whether it published f.
func (c *Cache) revalidated(f *flight, r *Request, stale *Entry, resp *http.Response, out fillOutcome, t fillClock, head bool) bool {
	switch {
	case originErrorStatus(resp.StatusCode) && c.staleOnError(stale):
		resp.Body.Close()
		out.detail, out.validated = DetailOriginError, false
		c.publishStale(f, r, stale, out)
		return true
	case resp.StatusCode == http.StatusNotModified:
		resp.Body.Close()
		c.m.revalidations.WithLabelValues("not_modified").Inc()
		e, stored := c.refresh(r, stale, resp, t)
		out.stored = stored
		c.publishStale(f, r, e, out)
		return true
	case head:
		c.headAnswered(f, r, stale, resp, out, t)
		return true
	}
	return false
}

// headAnswered handles the answer to a HEAD revalidation that is neither
// 304 nor an error the stale entry stands in for (RFC 9111 §4.3.5): a 200
// matching the stored response (headMatches) freshens it as a 304 would,
// and the readers get the refreshed entry; anything else is passed to the
// leader alone (a HEAD answer has no body to store or share). A 200 that
// does not match makes the stored response stale if it was still fresh
// (a HEAD forced to revalidate), so that the next request revalidates it.
func (c *Cache) headAnswered(f *flight, r *Request, stale *Entry, resp *http.Response, out fillOutcome, t fillClock) {
	if headMatches(stale, resp) {
		resp.Body.Close()
		c.m.revalidations.WithLabelValues("head_updated").Inc()
		e, stored := c.refresh(r, stale, resp, t)
		out.stored = stored
		c.publishStale(f, r, e, out)
		return
	}
	if resp.StatusCode == http.StatusOK {
		c.m.revalidations.WithLabelValues("head_changed").Inc()
		c.expire(stale, t.start)
	}
	c.publishLive(f, resp, out, "head")
}

// headMatches reports whether a HEAD response shows that the stored
// response is still current (RFC 9111 §4.3.5): both are 200, each
// validator (ETag, Last-Modified) either of them has is the same in the
// other, and the HEAD response's Content-Length, if any, is the stored
// one's.
func headMatches(stored *Entry, resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK || stored.Status != http.StatusOK {
		return false
	}
	for _, name := range [...]string{"Etag", "Last-Modified"} {
		if resp.Header.Get(name) != stored.Header.Get(name) {
			return false
		}
	}
	return resp.ContentLength < 0 || stored.Header.Get("Content-Length") == itoa(resp.ContentLength)
}

// expire stores a copy of a response that is still fresh with its
// lifetime cut to its current age: stale from now on.
func (c *Cache) expire(e *Entry, start uint64) {
	age := e.Age(c.now())
	if e.Lifetime <= age {
		return
	}
	x := *e
	x.Lifetime = age
	c.unlessInvalidated(&x, start, func() { c.putAll(&x, putRefresh, start) })
}

// publishLive hands an origin response that is not stored to the leader
// alone: the flight is not shared, and every waiter fetches on its own.
func (c *Cache) publishLive(f *flight, resp *http.Response, out fillOutcome, reason string) {
	f.hold(func() { f.live = resp.Body })
	resp.Body = nil
	out.live, out.notStored = resp, reason
	f.publish(nil, out)
}

// startStream starts writing e's body to the disk tier while the flight's
// readers read it, and publishes f; false when there is no disk tier, its
// doorkeeper does not admit the object (admit.go) or it cannot take it.
func (c *Cache) startStream(f *flight, skey string, e *Entry, resp *http.Response, out fillOutcome, t fillClock) bool {
	d := c.streamTier()
	if d == nil || c.door.mode == AdmitOff {
		return false
	}
	if !c.admitDisk(e, resp.ContentLength, t.start, nil) {
		// Not admitted (a size rule above the memory tier's object limit):
		// as if there were no disk tier.
		e.pending = nil
		return false
	}
	w, err := d.create(e.Key)
	if err != nil {
		c.m.diskWrites.WithLabelValues("error").Inc()
		c.warnDisk("disk tier cannot take a fill; streaming it unstored", "key", e.Key, "err", err)
		return false
	}
	st := newStream(e, w, resp.ContentLength)
	f.hold(func() { f.stream = st })
	if e.Key != skey {
		c.flights.add(e.Key, f)
	}
	out.stored = true
	f.publish(e, out)
	go c.pump(f, skey, resp.Body, t.start, t.req)
	return true
}

// errTooLarge means a body outgrew the memory tier's object limit.
var errTooLarge = errors.New("cache: body larger than the memory tier's object limit")

// readBody reads a whole fill body of at most limit bytes and closes it.
// When the body is larger it returns errTooLarge and leaves resp.Body
// readable from the start (what was read, then the rest).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= limit {
		// One buffer of the announced size, not io.ReadAll's doubling
		// (which was a fifth of edged's CPU, with the GC it caused, on a
		// fill-heavy mix of 1-100 KiB objects, and twice the memory
		// touched: a 1 MiB fill spent most of its time clearing pages).
		body := make([]byte, n)
		got, err := io.ReadFull(resp.Body, body)
		if err == nil {
			var one [1]byte
			if m, _ := resp.Body.Read(one[:]); m > 0 {
				err = fmt.Errorf("origin sent more body bytes than Content-Length said (%d)", n)
			}
		} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("origin sent %d body bytes, Content-Length said %d", got, n)
		}
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if int64(len(body)) > limit {
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil, errTooLarge
	}
	resp.Body.Close()
	if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		return nil, fmt.Errorf("origin sent %d body bytes, Content-Length said %d", len(body), resp.ContentLength)
	}
	return body, nil
}

// storeFilled stores an entry filled into memory in every tier, after its
// compressed variants alts, unless an invalidation overtook its fill, and
// reports whether any tier took it.
func (c *Cache) storeFilled(e *Entry, start uint64, alts []*Entry) bool {
	stored, how := false, putFill
	if !c.admitDisk(e, int64(len(e.Body)), start, alts) {
		how = putFillMemory // not admitted to disk (yet: see admitOnHit)
	}
	if d := c.diskStore(); d != nil {
		for _, a := range alts {
			dropOlder(d, a, how == putFill)
		}
		dropOlder(d, e, how == putFill)
	}
	if !c.unlessInvalidated(e, start, func() {
		for _, a := range alts {
			c.putAll(a, how, start)
		}
		stored = c.putAll(e, how, start)
	}) {
		// Invalidated while in flight: answer the readers, store nothing.
		c.m.fills.WithLabelValues("invalidated").Inc()
		return false
	}
	if stored {
		c.m.fills.WithLabelValues("stored").Inc()
	} else {
		c.m.fills.WithLabelValues("too_large").Inc()
	}
	return stored
}

// staleOnError reports whether stale may be served because the origin
// failed: its stale-if-error window (the response's, else the site's
// default) still covers it (RFC 5861 §4), and nothing forbids serving it
// stale. must-revalidate, proxy-revalidate and s-maxage forbid it (RFC
// 9111 §4.2.4, §5.2.2.2), and so does no-cache (§5.2.2.4): what must be
// validated before every use is never served unvalidated, whichever
// window applies (RFC 5861 §4 does not override that for a shared cache).
func (c *Cache) staleOnError(stale *Entry) bool {
	age := stale.Age(c.now())
	if stale.MustRevalidate || stale.NoCache || stale.StaleIfError <= 0 || age-stale.Lifetime > stale.StaleIfError {
		return false
	}
	c.m.revalidations.WithLabelValues("stale_if_error").Inc()
	return true
}

// originErrorStatus reports whether an origin's status is one of the
// errors RFC 5861 §4 lets a stale response stand in for: 500, 502, 503,
// 504. Other statuses (501, 505, ...) are answers, served as they are.
func originErrorStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// refresh applies a 304 answer to a revalidation (RFC 9111 §4.3.4), or a
// 200 answer to a HEAD one that matches (§4.3.5): the stored header is
// updated with the answer's fields (§3.2: all but Content-Length and the
// hop-by-hop ones), freshness is recomputed and the entry is stored again,
// its body untouched.
func (c *Cache) refresh(r *Request, stale *Entry, resp *http.Response, t fillClock) (*Entry, bool) {
	upd := resp.Header.Clone()
	httpx.RemoveHopByHop(upd)
	upd.Del("Content-Length")
	upd.Del("Age")
	hdr := stale.Header.Clone()
	for k, vv := range upd {
		hdr[k] = vv
	}
	merged := &http.Response{StatusCode: stale.Status, Header: hdr, Request: r.In, ProtoMajor: 1, ProtoMinor: 1}
	d := r.Policy.Evaluate(r.In, asWhole(r, merged))
	e := *stale
	e.Header, e.Memo = hdr, new(Memo)
	e.Timing = rfc.NewTiming(t.req, t.response, resp.Header)
	e.Lifetime, e.Heuristic, e.NoCache, e.MustRevalidate = d.Lifetime, d.Heuristic, d.NoCache, d.MustRevalidate
	e.NoCacheFields = d.NoCacheFields
	e.StaleWhileRevalidate, e.StaleIfError = d.StaleWhileRevalidate, d.StaleIfError
	stored := false
	c.unlessInvalidated(&e, t.start, func() {
		c.refreshCoded(stale, &e, t.start)
		stored = c.putAll(&e, putRefresh, t.start)
	})
	return &e, stored
}

// marker returns the Vary marker of primary for names, storing a new one
// (with a fresh id) when there is none or its names differ.
func (c *Cache) marker(primary string, names []string) *Entry {
	if st, ok := c.load(primary, primary); ok {
		st.close()
		if st.e.Marker && sameNames(st.e.Vary, names) {
			return st.e
		}
	}
	m := &Entry{Key: primary, Primary: primary, Status: http.StatusOK, Header: http.Header{},
		Marker: true, MarkerID: rand.Uint64(), Vary: names}
	c.putAll(m, putFill, 0)
	return m
}

// newEntry builds the stored form of resp under key. size is the body
// length, or -1 when it is not known yet (a streaming fill).
func newEntry(r *Request, key string, resp *http.Response, body []byte, d rfc.Decision, t rfc.Timing, size int64) *Entry {
	hdr := storedHeader(resp.Header, size, httpx.Via(resp.ProtoMajor, resp.ProtoMinor))
	names, _ := parseVary(resp.Header)
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = varyValue(r.In.Header, n)
	}
	return &Entry{
		Key:                  key,
		Primary:              r.Key,
		Status:               resp.StatusCode,
		Header:               hdr,
		Body:                 body,
		Timing:               t,
		Lifetime:             d.Lifetime,
		Heuristic:            d.Heuristic,
		NoCache:              d.NoCache,
		NoCacheFields:        d.NoCacheFields,
		MustRevalidate:       d.MustRevalidate,
		StaleWhileRevalidate: d.StaleWhileRevalidate,
		StaleIfError:         d.StaleIfError,
		Vary:                 names,
		VaryValues:           values,
		Memo:                 new(Memo),
	}
}

// storedHeader is the header an entry stores of an origin's src: without
// the hop-by-hop fields and Age (recomputed on every use from Timing), with
// Content-Length set to size once here rather than on every hit (none when
// size < 0: not known yet), and with via appended to Via. It is built in
// one pass into a map made for exactly its fields, with one array holding
// every value: the header lives as long as the entry, and a clone that
// then gained Via grew its map to twice its fields once they passed a map
// group (8), about 700 bytes of slack an object (TestMemoryCostMatchesHeap).
func storedHeader(src http.Header, size int64, via string) http.Header {
	hop := httpx.HopByHop(src["Connection"])
	keep := func(k string) bool {
		switch k {
		case "Age", "Content-Length", "Via":
			return false
		}
		return !hop(k)
	}
	prior := src["Via"]
	if hop("Via") {
		prior = nil
	}
	n, nv := 1, 1 // Via
	if size >= 0 {
		n, nv = n+1, nv+1
	}
	for k, vv := range src {
		if keep(k) {
			n, nv = n+1, nv+len(vv)
		}
	}
	h := make(http.Header, n)
	sv := make([]string, nv)
	for k, vv := range src {
		if keep(k) {
			c := copy(sv, vv)
			h[k], sv = sv[:c:c], sv[c:]
		}
	}
	if size >= 0 {
		sv[0] = itoa(size)
		h["Content-Length"], sv = sv[:1:1], sv[1:]
	}
	if len(prior) > 0 {
		via = strings.Join(prior, ", ") + ", " + via
	}
	sv[0] = via
	h["Via"] = sv[:1:1]
	return h
}

// withField returns h with the field name (canonical) set to the single
// value v: h itself, its value replaced in place, when it has the field
// with one value; otherwise a copy made for one more field, sharing h's
// values (h must not be used after). It never assigns to h: Go 1.26 grows
// a map of 8 fields into a table of 16 slots (400 bytes to 1,100) on any
// assignment, even one that replaces a value (internal/runtime/maps,
// PutSlot).
func withField(h http.Header, name, v string) http.Header {
	if vv := h[name]; len(vv) == 1 {
		vv[0] = v
		return h
	}
	h2 := make(http.Header, len(h)+1)
	for k, vv := range h {
		if k != name {
			h2[k] = vv
		}
	}
	h2[name] = []string{v}
	return h2
}

// asWhole is resp as the storage policy judges it: a slice's 206 (which
// accept has checked) as the 200 of the object it is part of, since
// edged understands it (RFC 9111 §3.4); any other response as it is.
func asWhole(r *Request, resp *http.Response) *http.Response {
	if r.slice == nil || resp.StatusCode != http.StatusPartialContent {
		return resp
	}
	w := *resp
	w.StatusCode = http.StatusOK
	return &w
}

// cancelBody releases the fill context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	once   sync.Once
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.cancel)
	return err
}

// readCloser joins a Reader with the Closer of the body it continues.
type readCloser struct {
	io.Reader
	io.Closer
}

// peerOf is the peer an upstream name (Origin.Send's) names, or "" when
// it is not a peer of the PoP (PeerPrefix).
func peerOf(upstream string) string {
	if p, ok := strings.CutPrefix(upstream, PeerPrefix); ok {
		return p
	}
	return ""
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
