package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Slices: a large object of a site with slicing on (Request.Slice) is
// fetched and stored in fixed-size slices, like nginx's slice module.
// Slice i covers bytes [i*S, (i+1)*S) of the object; it is fetched with
// "Range: bytes=i*S-((i+1)*S-1)" and stored as an entry of its own
// (status 206, with its Content-Range) under sliceKey(key, i), so that the
// tiers, eviction, admission and coalescing work per slice as they do for
// any key. A client's request is answered from the slices its bytes fall
// in, fetched when missing, as the body is read (sliceBody): the response
// looks like one stored 200 of the whole object to the edge, which applies
// the client's Range, If-Range and conditionals to it as to any entry.
//
// All slices of one object must carry the same strong ETag and the same
// total length (RFC 9111 §3.4: partial responses are combined only when
// their strong validators match). An answer that cannot be a slice (a 200
// to the Range, no or a wrong Content-Range, a weak or absent ETag, a
// status other than 206) makes the object unsliceable: it is served the
// normal way, as if slicing were off. See docs/caching.md, "Slices".

// sliceKey is the key of slice i of the object stored under key: the key,
// NUL, 0x03 and the index in decimal. The NUL keeps it among the keys a
// purge or invalidation of key's URL reaches (like a Vary variant's), and
// no variant, marker or compressed variant key has 0x03 after it.
func sliceKey(key string, i int64) string {
	return key + "\x00\x03" + strconv.FormatInt(i, 10)
}

// sliceObjectKey returns the object key of a slice key, or ok false when
// k is not one.
func sliceObjectKey(k string) (string, bool) {
	i := strings.Index(k, "\x00\x03")
	if i < 0 {
		return "", false
	}
	return k[:i], true
}

// countedKey is the object a purge counts a stored key as: a slice counts
// as its object (once, however many of its slices went).
func countedKey(k string) string {
	if obj, ok := sliceObjectKey(k); ok {
		return obj
	}
	return k
}

// sliceSpec is what a slice fill asks of the origin: the bytes
// [off, off+size) of the object.
type sliceSpec struct {
	index, off, size int64
}

// rangeValue is the Range field of the slice's origin request.
func (s *sliceSpec) rangeValue() string {
	return "bytes=" + strconv.FormatInt(s.off, 10) + "-" + strconv.FormatInt(s.off+s.size-1, 10)
}

// accept reports whether resp is a usable answer for the slice: a 206
// with one Content-Range that is exactly the slice (shorter for the last
// one) of a known total length, a body of that length and a strong ETag.
func (s *sliceSpec) accept(resp *http.Response) bool {
	if resp.StatusCode != http.StatusPartialContent || len(resp.Header["Content-Range"]) != 1 {
		return false
	}
	cr, ok := ParseContentRange(resp.Header.Get("Content-Range"))
	if !ok || cr.Total < 0 || cr.First != s.off || cr.Last != min(s.off+s.size, cr.Total)-1 {
		return false
	}
	if resp.ContentLength >= 0 && resp.ContentLength != cr.Last-cr.First+1 {
		return false
	}
	return strongETag(resp.Header.Get("Etag"))
}

// strongETag reports whether v is a strong entity tag (RFC 9110 §8.8.3).
func strongETag(v string) bool {
	return len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
}

// ContentRange is a parsed Content-Range field value (RFC 9110 §14.4):
// "bytes First-Last/Total", or "bytes */Total" for an unsatisfied range
// (First and Last -1). Total is -1 when the length is unknown ("*").
type ContentRange struct {
	First, Last, Total int64
}

// ParseContentRange parses a Content-Range value of the bytes unit. ok is
// false when v is not a valid one: another unit, a last before the first,
// a range reaching past a known total, "*/*".
func ParseContentRange(v string) (cr ContentRange, ok bool) {
	unit, rest, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return ContentRange{}, false
	}
	span, total, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return ContentRange{}, false
	}
	cr = ContentRange{First: -1, Last: -1, Total: -1}
	if total != "*" {
		if cr.Total, ok = parseDigits(total); !ok {
			return ContentRange{}, false
		}
	}
	if span == "*" {
		return cr, cr.Total >= 0
	}
	first, last, found := strings.Cut(span, "-")
	if !found {
		return ContentRange{}, false
	}
	if cr.First, ok = parseDigits(first); !ok {
		return ContentRange{}, false
	}
	if cr.Last, ok = parseDigits(last); !ok || cr.Last < cr.First || cr.Total >= 0 && cr.Last >= cr.Total {
		return ContentRange{}, false
	}
	return cr, true
}

// parseDigits parses a non-empty run of ASCII digits that fits an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// errNotSliceable: the origin's answer to a slice cannot be one; the
// object is served the normal way.
var errNotSliceable = errors.New("cache: the origin's answer cannot be a slice")

// ErrSliceChanged ends the body of a sliced response when a slice fetched
// for it belongs to another version of the object (another ETag or
// length) than the slices already sent: the response is cut off, never
// completed with bytes of another version. Every stored slice of the
// object but the new one has been discarded by then.
var ErrSliceChanged = errors.New("cache: the object changed while its slices were being served")

// slice is one slice found or fetched for a sliced response.
type slice struct {
	res   Result // its Get result; res.Body is the slice's body
	hdr   http.Header
	etag  string
	total int64
	hit   bool // found stored (no origin contacted)
}

func (s *slice) close() {
	if s.res.Body != nil {
		s.res.Body.Close()
		s.res.Body = nil
	}
}

// sliceRecord is the version of an object's slices last fetched from the
// origin: the validator every stored slice must match.
type sliceRecord struct {
	etag  string
	total int64
	size  int64 // the slice size it was fetched with
}

// same reports whether two records are of one version of the object.
func (r sliceRecord) same(o sliceRecord) bool { return r.etag == o.etag && r.total == o.total }

// sliceState is the cache's bookkeeping for sliced objects: the version
// of each (checked against every slice loaded, so that a slice left from
// an older version is replaced, not combined), and the metric.
type sliceState struct {
	mu      sync.Mutex
	records map[string]sliceRecord // by object key
	fetches *prometheus.CounterVec
}

// maxSliceRecords bounds the records kept; past it they are dropped and
// rebuilt as objects are requested (a record only speeds the detection of
// a changed object: a stored slice is still checked against the slices
// of the same response).
const maxSliceRecords = 1 << 16

func newSliceState(reg prometheus.Registerer) (*sliceState, error) {
	s := &sliceState{records: make(map[string]sliceRecord), fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edged_slice_fetches_total",
		Help: "Slices of sliced objects a request needed (cache.slice), by site and result: hit (stored, no origin contact), origin (fetched or revalidated from the origin or a peer), collapsed (joined another request's fetch of the slice), changed (another ETag or length than the object's stored slices: all discarded), unsliceable (the origin's answer could not be a slice: served the normal way), error.",
	}, []string{"site", "result"})}
	if reg != nil {
		if err := reg.Register(s.fetches); err != nil {
			return nil, fmt.Errorf("cache: registering metrics: %w", err)
		}
	}
	return s, nil
}

func (s *sliceState) record(key string) (sliceRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	return r, ok
}

func (s *sliceState) setRecord(key string, r sliceRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) >= maxSliceRecords {
		clear(s.records)
	}
	s.records[key] = r
}

func (s *sliceState) forget(key string) (sliceRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key]
	delete(s.records, key)
	return r, ok
}

// maxSliceChecks bounds the slices a request's Cache-Status looks up to
// say whether all it covers are stored; past it, the first ones decide.
const maxSliceChecks = 256

// getSliced answers a request of a site with slicing on. An object stored
// whole (one that could not be sliced, served the normal way before) is
// served as stored. Otherwise the slice holding the first byte asked for
// (the first slice without a Range or for a suffix range) is found or
// fetched, its Content-Range tells the object's length, and the response
// is the whole object's, its body read slice by slice.
func (c *Cache) getSliced(ctx context.Context, r *Request) (Result, error) {
	if st, ok := c.load(r.Key, r.Key); ok {
		st.close()
		return c.Get(ctx, r.whole())
	}
	b := &sliceBody{c: c, ctx: ctx, r: r, size: r.Slice, in: sliceIn(r.In)}
	first := int64(0)
	if rec, ok := c.slices.record(r.Key); ok && rec.total > 0 && r.In.Method == http.MethodGet {
		// The length is known: start at the slice the response starts
		// in (a suffix range's too), or for an unsatisfiable range at
		// the last one, rather than past the end.
		a, z := requestSpan(r.In, rec.total, rec.etag)
		first = (rec.total - 1) / r.Slice
		if z >= a {
			first = a / r.Slice
		}
	} else if r.RangeStart > 0 {
		first = r.RangeStart / r.Slice
	}
	head, err := b.load(first, nil)
	if err != nil && first > 0 && errors.Is(err, errPastEnd) {
		first = 0
		head, err = b.load(first, nil)
	}
	switch {
	case errors.Is(err, errNotSliceable), errors.Is(err, errPastEnd):
		c.slices.fetches.WithLabelValues(r.Site, "unsliceable").Inc()
		if rec, ok := c.slices.forget(r.Key); ok {
			// The origin no longer answers ranges (or changed the object
			// into one that cannot be sliced): its slices go.
			c.discardSlices(r.Key, rec, -1)
		}
		return c.Get(ctx, r.whole())
	case err != nil:
		fwd := FwdURIMiss
		if head != nil {
			fwd = cmpFwd(head.res.Fwd)
		}
		return Result{Fwd: fwd}, err
	}
	b.total, b.etag = head.total, head.etag
	b.held, b.heldIdx = head, first
	return c.slicedResult(r, b, head), nil
}

// whole returns r without slicing: the normal way.
func (r *Request) whole() *Request {
	w := *r
	w.Slice = 0
	return &w
}

// sliceIn is the request a slice fill is made for: the client's as a GET,
// without its Range and conditional fields, asking for the identity
// coding (slices are byte ranges of one representation).
func sliceIn(in *http.Request) *http.Request {
	out := new(http.Request)
	*out = *in
	out.Method = http.MethodGet
	out.Header = in.Header.Clone()
	for _, f := range [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		delete(out.Header, f)
	}
	out.Header.Set("Accept-Encoding", "identity")
	return out
}

// slicedResult is the Result of a sliced response whose first slice is
// head: the whole object's entry (head's stored fields, status 200, the
// total length), a body reading the slices, and what was found stored.
func (c *Cache) slicedResult(r *Request, b *sliceBody, head *slice) Result {
	e := new(Entry)
	if head.res.Entry != nil {
		*e = *head.res.Entry
	} else {
		e.Timing.ResponseTime = c.now() // an unstored slice: fresh now, lifetime 0
	}
	e.Key, e.Primary, e.Status, e.Body, e.Memo = r.Key, r.Key, http.StatusOK, nil, nil
	e.Codings, e.altKeys, e.pending = 0, nil, nil
	e.Header = head.hdr.Clone()
	delete(e.Header, "Content-Range")
	e.Header.Set("Content-Length", itoa(b.total))
	res := Result{Entry: e, Body: b, Detail: DetailSlices, Tier: head.res.Tier, Strip: head.res.Strip,
		FwdStatus: head.res.FwdStatus, Stored: head.res.Stored, Collapsed: head.res.Collapsed,
		Upstream: head.res.Upstream, Peer: head.res.Peer, Age: e.Age(c.now())}
	res.TTL = e.Lifetime - res.Age
	if head.res.Detail.StaleOnError() {
		res.Detail = head.res.Detail
	}
	stored, all := c.slicesStored(r, b, head)
	switch {
	case all:
		res.Hit = true
	case head.res.Fwd == FwdStale || head.res.Fwd == FwdRequest:
		res.Fwd = head.res.Fwd // stored, but the first slice had to be revalidated
	case stored:
		res.Fwd = FwdPartial
	default:
		res.Fwd = cmpFwd(head.res.Fwd)
	}
	return res
}

// slicesStored reports whether some (stored) and all (all) of the slices
// the response will send were stored before the request: the head slice
// and up to maxSliceChecks more.
func (c *Cache) slicesStored(r *Request, b *sliceBody, head *slice) (stored, all bool) {
	stored, all = head.hit, head.hit
	first, last := requestSpan(r.In, b.total, b.etag)
	if last < first {
		return stored, all
	}
	checked := 0
	for i := first / b.size; i <= last/b.size && checked < maxSliceChecks; i++ {
		if i == b.heldIdx {
			continue
		}
		checked++
		k := sliceKey(r.Key, i)
		if st, ok := c.load(k, k); ok {
			st.close()
			stored = true
		} else {
			all = false
		}
	}
	return stored, all
}

// requestSpan is the byte span [first, last] of an object of total bytes
// (strong ETag etag) that the edge will send for in: the whole object, or
// the single range asked for (nothing for an unsatisfiable one or a HEAD).
// Several ranges, an invalid Range or an If-Range that does not match get
// the whole object, as the edge answers them (edge.evalRange).
func requestSpan(in *http.Request, total int64, etag string) (first, last int64) {
	if in.Method == http.MethodHead {
		return 0, -1
	}
	spec := in.Header.Get("Range")
	if ir := in.Header.Get("If-Range"); spec == "" || ir != "" && ir != etag || strings.Contains(spec, ",") {
		return 0, total - 1
	}
	set, ok := strings.CutPrefix(strings.TrimSpace(spec), "bytes=")
	a, z, ok2 := strings.Cut(strings.TrimSpace(set), "-")
	if !ok || !ok2 {
		return 0, total - 1
	}
	a, z = strings.TrimSpace(a), strings.TrimSpace(z)
	if a == "" {
		n, ok := parseDigits(z)
		if !ok {
			return 0, total - 1
		}
		return total - min(n, total), total - 1
	}
	first, ok = parseDigits(a)
	if !ok {
		return 0, total - 1
	}
	last = total - 1
	if z != "" {
		if l, ok := parseDigits(z); ok && l < last {
			last = l
		}
	}
	return first, last
}

// cmpFwd is f, or FwdURIMiss when the origin was not contacted.
func cmpFwd(f Fwd) Fwd {
	if f == FwdNone {
		return FwdURIMiss
	}
	return f
}

// errPastEnd: the slice asked for starts past the object's end (the
// origin answered 416 with the object's length).
var errPastEnd = errors.New("cache: slice past the end of the object")

// sliceBody is the body of a sliced response: the object's bytes, read
// slice by slice, each found stored or fetched (coalesced per slice) as
// the reader reaches it. It holds at most two slices' bodies open: the
// first slice's until it is read, and the one being read. ctx is kept
// for the reads because Body's methods take none.
type sliceBody struct {
	c    *Cache
	ctx  context.Context // the client's: its slice fills are detached as any
	r    *Request
	in   *http.Request // sliceIn(r.In)
	size int64         // the slice size

	total int64 // the object's length
	etag  string

	held    *slice // the head slice, until read or closed
	heldIdx int64
	cur     *slice // the slice being read
}

func (b *sliceBody) Size() int64 { return b.total }

func (b *sliceBody) NewReader(off, n int64) io.Reader {
	if n < 0 {
		n = b.total - off
	}
	return &sliceReader{b: b, off: off, end: off + n}
}

func (b *sliceBody) Close() error {
	for _, s := range [...]*slice{b.held, b.cur} {
		if s != nil {
			s.close()
		}
	}
	b.held, b.cur = nil, nil
	return nil
}

// request is the cache request of slice i.
func (b *sliceBody) request(i int64) *Request {
	sub := *b.r
	sub.Key, sub.In, sub.RangeStart, sub.Compress, sub.Slice = sliceKey(b.r.Key, i), b.in, -1, nil, 0
	sub.slice = &sliceSpec{index: i, off: i * b.size, size: b.size}
	return &sub
}

// load finds or fetches slice i. want, when set, is the version the
// slice must be (the response's first slice); the object's record is
// checked too: a stored slice of another version is dropped and fetched
// again, a fetched one of another version than the stored ones discards
// them (and, when it is not the version wanted, fails with
// ErrSliceChanged).
func (b *sliceBody) load(i int64, want *sliceRecord) (*slice, error) {
	c, r := b.c, b.r
	for attempt := 0; ; attempt++ {
		s, err := b.fetch(i)
		if err != nil {
			return s, err
		}
		v := sliceRecord{etag: s.etag, total: s.total, size: b.size}
		rec, known := c.slices.record(r.Key)
		switch {
		case known && !rec.same(v) && s.hit && attempt == 0:
			// Left from another version: drop it and fetch it again.
			s.close()
			c.dropSlices(r.Key, []int64{i})
			continue
		case known && !rec.same(v):
			c.slices.fetches.WithLabelValues(r.Site, "changed").Inc()
			c.discardSlices(r.Key, rec, i)
			c.discardSlices(r.Key, v, i)
			c.slices.setRecord(r.Key, v)
		case !known:
			c.slices.setRecord(r.Key, v)
		}
		if want != nil && !want.same(v) {
			s.close()
			if s.hit {
				c.dropSlices(r.Key, []int64{i})
			}
			return nil, ErrSliceChanged
		}
		return s, nil
	}
}

// fetch gets slice i through the cache (stored, or filled coalesced).
func (b *sliceBody) fetch(i int64) (*slice, error) {
	c, site := b.c, b.r.Site
	res, err := c.Get(b.ctx, b.request(i))
	s := &slice{res: res}
	if err != nil {
		c.slices.fetches.WithLabelValues(site, "error").Inc()
		return s, err
	}
	if res.Response != nil {
		resp := res.Response
		spec := sliceSpec{index: i, off: i * b.size, size: b.size}
		switch {
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			s.close()
			if cr, ok := ParseContentRange(resp.Header.Get("Content-Range")); ok && cr.Total > 0 && spec.off >= cr.Total {
				return s, errPastEnd
			}
			return s, errNotSliceable
		case !spec.accept(resp) || res.NotStored != "too-large" && res.NotStored != "not-admitted":
			s.close()
			return s, errNotSliceable
		}
		s.hdr = resp.Header
	} else {
		s.hdr = res.Entry.Header
	}
	cr, _ := ParseContentRange(s.hdr.Get("Content-Range"))
	s.etag, s.total, s.hit = s.hdr.Get("Etag"), cr.Total, res.Hit
	switch {
	case res.Hit:
		c.slices.fetches.WithLabelValues(site, "hit").Inc()
	case res.Collapsed:
		c.slices.fetches.WithLabelValues(site, "collapsed").Inc()
	default:
		c.slices.fetches.WithLabelValues(site, "origin").Inc()
	}
	return s, nil
}

// dropSlices removes the slices idx of the object key from every tier.
func (c *Cache) dropSlices(key string, idx []int64) {
	if len(idx) == 0 {
		return
	}
	keys := make([]string, len(idx))
	for j, i := range idx {
		keys[j] = sliceKey(key, i)
	}
	if _, err := c.remove(context.Background(), &keySelector{urlKeys: keys, keysOnly: true}); err != nil {
		c.warnDisk("discarding slices failed", "key", key, "err", err)
	}
}

// discardSlices removes every slice of the object key in its version
// rec but slice keep.
func (c *Cache) discardSlices(key string, rec sliceRecord, keep int64) {
	if rec.size <= 0 {
		return
	}
	var idx []int64
	for i := int64(0); i*rec.size < rec.total; i++ {
		if i != keep {
			idx = append(idx, i)
		}
	}
	c.dropSlices(key, idx)
}

// sliceKeysOf returns the keys the slices of the object key may be held
// under in memory, for an invalidation, which removes the object's disk
// keys by prefix but only its own key from memory: every slice of the
// version recorded, and the slice keys (Vary variants included) the
// disk tier holds, which the warm start may have copied into memory
// before any request recorded the object.
func (c *Cache) sliceKeysOf(key string) []string {
	var keys []string
	if rec, ok := c.slices.forget(key); ok && rec.size > 0 {
		for i := int64(0); i*rec.size < rec.total; i++ {
			keys = append(keys, sliceKey(key, i))
		}
	}
	prefix := key + "\x00\x03"
	for _, t := range c.tierList() {
		if d, ok := t.(diskTier); ok {
			d.s.KeysWithPrefix(prefix, func(k string) bool {
				keys = append(keys, k)
				return true
			})
		}
	}
	return keys
}

// invalidateSlices removes keys (sliceKeysOf's) from the memory tier.
func (c *Cache) invalidateSlices(keys []string) {
	for _, k := range keys {
		c.mem.del(k)
	}
}

// sliceReader reads [off, end) of a sliced body.
type sliceReader struct {
	b        *sliceBody
	off, end int64
	rd       io.Reader // over the current slice
	left     int64     // bytes rd still owes
}

func (r *sliceReader) Read(p []byte) (int, error) {
	b := r.b
	for {
		if r.off >= r.end {
			if b.cur != nil {
				b.cur.close()
				b.cur = nil
			}
			return 0, io.EOF
		}
		if r.rd == nil {
			if err := r.next(); err != nil {
				return 0, err
			}
		}
		if int64(len(p)) > r.left {
			p = p[:r.left]
		}
		n, err := r.rd.Read(p)
		r.off += int64(n)
		r.left -= int64(n)
		if r.left == 0 {
			b.cur.close()
			b.cur, r.rd = nil, nil
			err = nil
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// next opens the slice holding r.off.
func (r *sliceReader) next() error {
	b := r.b
	i := r.off / b.size
	var s *slice
	if b.held != nil && b.heldIdx == i {
		s, b.held = b.held, nil
	} else {
		want := sliceRecord{etag: b.etag, total: b.total}
		var err error
		if s, err = b.load(i, &want); err != nil {
			return err
		}
	}
	b.cur = s
	local := r.off - i*b.size
	n := min(r.end, (i+1)*b.size, b.total) - r.off
	body := s.res.Body
	if size := body.Size(); size >= 0 && local+n > size {
		return fmt.Errorf("%w: slice %d of %s holds %d bytes", ErrFillFailed, i, b.r.Key, size)
	}
	if _, live := body.(*liveBody); live {
		rd := body.NewReader(0, -1)
		if _, err := io.CopyN(io.Discard, rd, local); err != nil {
			return err
		}
		r.rd = io.LimitReader(rd, n)
	} else {
		r.rd = body.NewReader(local, n)
	}
	r.left = n
	return nil
}
