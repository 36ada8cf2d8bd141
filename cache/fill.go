package cache

import (
	"bytes"
	"context"
	"fmt"
	"github.com/edged-proxy/edged/cache/rfc"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edged-proxy/edged/internal/httpx"
)

// fillResult is what a fill shares with its waiters.
type fillResult struct {
	entry     *Entry
	stream    *stream // set when the body is being streamed through the disk tier
	stored    bool
	hit       bool   // the re-check inside the flight found a usable entry
	fwdStatus int    // the origin's status code, when it answered
	detail    string // "stale-if-error" when the stale entry is served
}

// handoff passes an unshareable live origin response from the fill to the
// request that led it. If that request has gone away, the body is closed.
type handoff struct {
	mu     sync.Mutex
	gone   bool
	resp   *http.Response
	status int
}

func (h *handoff) give(resp *http.Response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		resp.Body.Close()
		return
	}
	h.resp, h.status = resp, resp.StatusCode
}

func (h *handoff) abandon() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	if h.resp != nil {
		h.resp.Body.Close()
		h.resp = nil
	}
}

func (h *handoff) take() *http.Response {
	h.mu.Lock()
	defer h.mu.Unlock()
	resp := h.resp
	h.resp = nil
	return resp
}

// conditionalFields are removed from fill requests: a fill needs the whole
// representation, not the client's 304 or 206.
var conditionalFields = [...]string{
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range",
}

// lead performs one origin fetch for r: a conditional one when stale is set
// (RFC 9111 §4.3.1). A shareable response is stored (when it fits) and
// returned; an unshareable one is handed to the leading request through h
// and reported as *errNotShared. When the origin fails and stale may still
// be used (RFC 5861 §4), stale is the result.
func (c *Cache) lead(ctx context.Context, r *Request, fwd string, stale *Entry, h *handoff) (fr *fillResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			fr, err = nil, fmt.Errorf("cache: fill of %s panicked: %v", r.Key, p)
		}
	}()
	if stale == nil {
		// A fill that ended just before this flight began may have stored it.
		if _, st, found, _ := c.find(r); found {
			e := st.e
			st.close()
			if age := e.Age(c.now()); rfc.ParseRequestDirectives(r.In.Header).Allows(e.Lifetime, age, e.MustRevalidate, e.NoCache) {
				return &fillResult{entry: e, hit: true}, nil
			}
		}
	}

	start := c.inval.begin()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fillTimeout)
	out, err := r.Out.NewOut(fctx)
	if err != nil {
		cancel()
		c.m.fills.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)
	}
	for _, f := range conditionalFields {
		out.Header.Del(f)
	}
	if stale != nil {
		if etag := stale.Header.Get("Etag"); etag != "" {
			out.Header.Set("If-None-Match", etag)
		}
		if lm := stale.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	reqTime := c.now()
	resp, err := r.Transport.RoundTrip(out)
	respTime := c.now()
	if err != nil {
		cancel()
		c.m.fills.WithLabelValues("error").Inc()
		if stale != nil {
			if fr := c.staleOnError(stale, 0); fr != nil {
				return fr, nil
			}
			if stale.MustRevalidate {
				return nil, fmt.Errorf("%w: %s: %v", ErrStaleForbidden, r.Key, err)
			}
		}
		return nil, fmt.Errorf("cache: fetching %s: %w", r.Key, err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	if stale != nil {
		switch {
		case resp.StatusCode >= 500:
			if fr := c.staleOnError(stale, resp.StatusCode); fr != nil {
				resp.Body.Close()
				return fr, nil
			}
		case resp.StatusCode == http.StatusNotModified:
			resp.Body.Close()
			return c.refresh(r, stale, resp, reqTime, respTime, start), nil
		}
	}

	d := r.Policy.Evaluate(r.In, resp)
	if d.Storable && (resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusNotModified) {
		d.Storable, d.Reason = false, "status"
	}
	if !d.Storable {
		c.m.fills.WithLabelValues("not_storable").Inc()
		h.give(resp)
		return nil, &errNotShared{reason: d.Reason}
	}
	key := r.Key
	if names, _ := parseVary(resp.Header); len(names) > 0 {
		key = variantKey(c.marker(r.Key, names), r.In.Header)
	}
	limit := c.mem.maxObject
	timing := rfc.NewTiming(reqTime, respTime, resp.Header)
	if c.diskTier() != nil && (resp.ContentLength < 0 || resp.ContentLength > limit) {
		// Large or of unknown length: write it to disk while every waiter
		// reads it (read-while-write).
		w, err := c.diskTier().Create(key)
		if err == nil {
			e := newEntry(r, key, resp, nil, d, timing, resp.ContentLength)
			e.Tags = parseTags(resp.Header, c.tagHeaders)
			st := newStream(e, w, resp.ContentLength)
			c.streams.Store(key, st)
			go c.pump(st, resp.Body, start, reqTime)
			return &fillResult{entry: e, stream: st, stored: true, fwdStatus: resp.StatusCode}, nil
		}
		c.m.diskWrites.WithLabelValues("error").Inc()
		c.warnDisk("disk tier cannot take a fill; streaming it unstored", "key", key, "err", err)
	}
	if resp.ContentLength > limit {
		c.m.fills.WithLabelValues("too_large").Inc()
		h.give(resp)
		return nil, &errNotShared{reason: "too-large"}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		resp.Body.Close()
		c.m.fills.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("cache: reading %s from origin: %w", r.Key, err)
	}
	if int64(len(body)) > limit {
		c.m.fills.WithLabelValues("too_large").Inc()
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		h.give(resp)
		return nil, &errNotShared{reason: "too-large"}
	}
	resp.Body.Close()
	if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		c.m.fills.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("cache: %s: origin sent %d body bytes, Content-Length said %d", r.Key, len(body), resp.ContentLength)
	}
	c.m.fillTime.Observe(c.now().Sub(reqTime).Seconds())

	e := newEntry(r, key, resp, body, d, timing, int64(len(body)))
	e.Tags = parseTags(resp.Header, c.tagHeaders)
	fr = &fillResult{entry: e, fwdStatus: resp.StatusCode}
	if !c.unlessInvalidated(e, start, func() { fr.stored = c.mem.set(e) }) {
		// Invalidated while in flight: answer the waiters, store nothing.
		c.m.fills.WithLabelValues("invalidated").Inc()
		return fr, nil
	}
	if c.diskTier() != nil {
		c.writeBehind(e, start)
		fr.stored = true
	}
	if fr.stored {
		c.m.fills.WithLabelValues("stored").Inc()
	} else {
		c.m.fills.WithLabelValues("too_large").Inc()
	}
	return fr, nil
}

// staleOnError returns stale as the fill's result when its stale-if-error
// window still covers it (RFC 5861 §4), else nil. status is the origin's
// error status, or 0 when it could not be reached.
func (c *Cache) staleOnError(stale *Entry, status int) *fillResult {
	age := stale.Age(c.now())
	if stale.MustRevalidate || stale.StaleIfError <= 0 || age-stale.Lifetime > stale.StaleIfError {
		return nil
	}
	c.m.revalidations.WithLabelValues("stale_if_error").Inc()
	return &fillResult{entry: stale, fwdStatus: status, detail: "stale-if-error"}
}

// refresh applies a 304 answer to a revalidation (RFC 9111 §4.3.4): the
// stored header is updated with the 304's fields (§3.2: all but
// Content-Length and the hop-by-hop ones), freshness is recomputed and the
// entry is stored again, its body untouched.
func (c *Cache) refresh(r *Request, stale *Entry, resp *http.Response, reqTime, respTime time.Time, start uint64) *fillResult {
	c.m.revalidations.WithLabelValues("not_modified").Inc()
	upd := resp.Header.Clone()
	httpx.RemoveHopByHop(upd)
	upd.Del("Content-Length")
	upd.Del("Age")
	hdr := stale.Header.Clone()
	for k, vv := range upd {
		hdr[k] = vv
	}
	merged := &http.Response{StatusCode: stale.Status, Header: hdr, Request: r.In, ProtoMajor: 1, ProtoMinor: 1}
	d := r.Policy.Evaluate(r.In, merged)
	e := *stale
	e.Header = hdr
	e.Timing = rfc.NewTiming(reqTime, respTime, resp.Header)
	e.Lifetime, e.Heuristic, e.NoCache, e.MustRevalidate = d.Lifetime, d.Heuristic, d.NoCache, d.MustRevalidate
	e.StaleWhileRevalidate, e.StaleIfError = d.StaleWhileRevalidate, d.StaleIfError
	fr := &fillResult{entry: &e, fwdStatus: http.StatusNotModified}
	c.unlessInvalidated(&e, start, func() {
		if e.Body != nil {
			c.mem.set(&e)
			fr.stored = true
		}
		if c.diskTier() != nil {
			err := c.diskTier().UpdateMeta(e.Key, encodeEntry(&e), e.expires())
			switch {
			case err == nil:
				fr.stored = true
			case e.Body != nil: // only in memory so far: the write-behind may not have landed
			default:
				c.warnDisk("disk tier: updating a revalidated entry failed", "key", e.Key, "err", err)
			}
		}
	})
	return fr
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
	c.mem.set(m)
	if c.diskTier() != nil {
		if err := c.writeMarker(m); err != nil {
			c.warnDisk("disk tier: storing a Vary marker failed", "key", primary, "err", err)
		}
	}
	return m
}

// newEntry builds the stored form of resp under key. size is the body
// length, or -1 when it is not known yet (a streaming fill).
func newEntry(r *Request, key string, resp *http.Response, body []byte, d rfc.Decision, t rfc.Timing, size int64) *Entry {
	hdr := resp.Header.Clone()
	httpx.RemoveHopByHop(hdr)
	hdr.Del("Age") // recomputed on every use from Timing
	// Set once here rather than on every hit.
	if size >= 0 {
		hdr.Set("Content-Length", itoa(size))
	} else {
		hdr.Del("Content-Length")
	}
	httpx.AppendValue(hdr, "Via", httpx.Via(resp.ProtoMajor, resp.ProtoMinor))
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
		MustRevalidate:       d.MustRevalidate,
		StaleWhileRevalidate: d.StaleWhileRevalidate,
		StaleIfError:         d.StaleIfError,
		Vary:                 names,
		VaryValues:           values,
	}
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

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
