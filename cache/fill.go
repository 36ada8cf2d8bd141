package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/edged-proxy/edged/internal/httpx"
)

// fillResult is what a fill shares with its waiters.
type fillResult struct {
	entry  *Entry
	stream *stream // set when the body is being streamed through the disk tier
	stored bool
	hit    bool // the re-check inside the flight found a usable entry
}

// handoff passes an unshareable live origin response from the fill to the
// request that led it. If that request has gone away, the body is closed.
type handoff struct {
	mu   sync.Mutex
	gone bool
	resp *http.Response
}

func (h *handoff) give(resp *http.Response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		resp.Body.Close()
		return
	}
	h.resp = resp
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

// lead performs one origin fetch for r. A shareable response is stored (when
// it fits) and returned; an unshareable one is handed to the leading request
// through h and reported as *errNotShared.
func (c *Cache) lead(ctx context.Context, r *Request, fwd string, h *handoff) (fr *fillResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			fr, err = nil, fmt.Errorf("cache: fill of %s panicked: %v", r.Key, p)
		}
	}()
	if fwd == "uri-miss" || fwd == "vary-miss" {
		// A fill that ended just before this flight began may have stored it.
		if e, ok := c.mem.get(r.Key); ok && e.matchesVary(r.In.Header) {
			if age := e.Age(c.now()); ParseRequestDirectives(r.In.Header).Allows(e.Lifetime, age, e.MustRevalidate, e.NoCache) {
				return &fillResult{entry: e, hit: true}, nil
			}
		}
	}

	start := c.inval.begin()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fillTimeout)
	out, err := r.NewOut(fctx)
	if err != nil {
		cancel()
		c.m.fills.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("cache: building the origin request for %s: %w", r.Key, err)
	}
	for _, f := range conditionalFields {
		out.Header.Del(f)
	}
	reqTime := c.now()
	resp, err := r.Transport.RoundTrip(out)
	respTime := c.now()
	if err != nil {
		cancel()
		c.m.fills.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("cache: fetching %s: %w", r.Key, err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}

	d := r.Policy.Evaluate(r.In, resp)
	if d.Storable && (resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusNotModified) {
		d.Storable, d.Reason = false, "status"
	}
	if !d.Storable {
		c.m.fills.WithLabelValues("not_storable").Inc()
		h.give(resp)
		return nil, &errNotShared{reason: d.Reason}
	}
	limit := c.mem.maxObject
	timing := NewTiming(reqTime, respTime, resp.Header)
	if c.disk != nil && (resp.ContentLength < 0 || resp.ContentLength > limit) {
		// Large or of unknown length: write it to disk while every waiter
		// reads it (read-while-write).
		w, err := c.disk.Create(r.Key)
		if err == nil {
			e := newEntry(r, resp, nil, d, timing, resp.ContentLength)
			st := newStream(e, w, resp.ContentLength)
			c.streams.Store(r.Key, st)
			go c.pump(st, resp.Body, start, reqTime)
			return &fillResult{entry: e, stream: st, stored: true}, nil
		}
		c.log.Warn("disk tier cannot take a fill; streaming it unstored", "key", r.Key, "err", err)
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

	e := newEntry(r, resp, body, d, timing, int64(len(body)))
	if c.inval.stale(r.Key, start) {
		// Invalidated while in flight: answer the waiters, store nothing.
		c.m.fills.WithLabelValues("invalidated").Inc()
		return &fillResult{entry: e}, nil
	}
	stored := c.mem.set(e)
	if c.disk != nil {
		c.writeBehind(e, start)
		stored = true
	}
	if stored {
		c.m.fills.WithLabelValues("stored").Inc()
	} else {
		c.m.fills.WithLabelValues("too_large").Inc()
	}
	return &fillResult{entry: e, stored: stored}, nil
}

// newEntry builds the stored form of resp. size is the body length, or -1
// when it is not known yet (a streaming fill).
func newEntry(r *Request, resp *http.Response, body []byte, d Decision, t Timing, size int64) *Entry {
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
		Key:            r.Key,
		Status:         resp.StatusCode,
		Header:         hdr,
		Body:           body,
		Timing:         t,
		Lifetime:       d.Lifetime,
		Heuristic:      d.Heuristic,
		NoCache:        d.NoCache,
		MustRevalidate: d.MustRevalidate,
		Vary:           names,
		VaryValues:     values,
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
