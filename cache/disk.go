package cache

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// The disk tier glue: lookups with promotion to memory, write-behind of
// entries filled into memory, and streaming fills that are written to disk
// while clients read them.

// invalidations remembers recent invalidations and purges, so that a fill
// that began before one does not store its (now outdated) response after
// it. Every fill takes a sequence number when it starts; an invalidation
// takes a later one.
type invalidations struct {
	mu   sync.Mutex
	seq  uint64
	keys map[string]invalidation // by primary key
	sels []selInvalidation       // prefix, host and tag purges
	ttl  time.Duration           // how long a record must outlive any fill
}

type invalidation struct {
	seq uint64
	at  time.Time
}

// selInvalidation is a purge by key prefix or tag.
type selInvalidation struct {
	invalidation
	prefixes, tags []string
}

// begin returns the sequence number a fill starting now carries.
func (iv *invalidations) begin() uint64 {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.seq++
	return iv.seq
}

// invalidate records an invalidation of the primary keys, key prefixes and
// tags given, at now.
func (iv *invalidations) invalidate(now time.Time, keys, prefixes, tags []string) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.seq++
	rec := invalidation{seq: iv.seq, at: now}
	if iv.keys == nil {
		iv.keys = make(map[string]invalidation)
	}
	for _, k := range keys {
		iv.keys[k] = rec
	}
	if len(prefixes)+len(tags) > 0 {
		iv.sels = append(iv.sels, selInvalidation{invalidation: rec, prefixes: prefixes, tags: tags})
	}
	// Prune records no running fill can predate.
	if len(iv.keys)%1024 == 0 {
		for k, v := range iv.keys {
			if now.Sub(v.at) > iv.ttl {
				delete(iv.keys, k)
			}
		}
	}
	for len(iv.sels) > 0 && now.Sub(iv.sels[0].at) > iv.ttl {
		iv.sels = iv.sels[1:]
	}
}

// unlessInvalidated runs store (which makes e visible in a tier) unless
// an invalidation overtook the fill that began at start, and reports
// whether it ran. It holds the gate shared, and invalidations take it
// exclusively while they record themselves, so a store either lands before
// the invalidation is recorded (and the invalidation's scan of the tiers
// finds it) or sees the record and stores nothing: never the gap between.
func (c *Cache) unlessInvalidated(e *Entry, start uint64, store func()) bool {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.inval.stale(e, start) {
		return false
	}
	store()
	return true
}

// recordInvalidation records an invalidation (see unlessInvalidated).
func (c *Cache) recordInvalidation(keys, prefixes, tags []string) {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.inval.invalidate(c.now(), keys, prefixes, tags)
}

// stale reports whether a fill of e that began at sequence start was
// overtaken by an invalidation of its key, a prefix of it, or one of its
// tags.
func (iv *invalidations) stale(e *Entry, start uint64) bool {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if v, ok := iv.keys[URLKey(e.Primary)]; ok && v.seq > start {
		return true
	}
	for i := len(iv.sels) - 1; i >= 0 && iv.sels[i].seq > start; i-- {
		s := iv.sels[i]
		for _, p := range s.prefixes {
			if strings.HasPrefix(e.Primary, p) {
				return true
			}
		}
		for _, t := range s.tags {
			if slices.Contains(e.Tags, t) {
				return true
			}
		}
	}
	return false
}

// since reports whether an invalidation recorded at or after t covers the
// primary key primary, a prefix of it, or one of tags.
func (iv *invalidations) since(primary string, tags []string, t time.Time) bool {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if v, ok := iv.keys[URLKey(primary)]; ok && !v.at.Before(t) {
		return true
	}
	for i := len(iv.sels) - 1; i >= 0 && !iv.sels[i].at.Before(t); i-- {
		s := iv.sels[i]
		for _, p := range s.prefixes {
			if strings.HasPrefix(primary, p) {
				return true
			}
		}
		for _, tag := range s.tags {
			if slices.Contains(tags, tag) {
				return true
			}
		}
	}
	return false
}

// PurgedSince reports whether a purge or invalidation this node applied at
// or after t covers the response stored under the primary key primary with
// header h (its URL, a prefix or host of it, or a tag h names). A PoP
// asks it of a peer's answer: when the peer's copy was fetched from the
// origin before t, and a purge was applied here since, the peer may not
// have applied that purge yet, and its copy must not be taken. Records
// are kept for twice the fill timeout.
func (c *Cache) PurgedSince(primary string, h http.Header, t time.Time) bool {
	return c.inval.since(primary, parseTags(h, c.tagHeaders), t)
}

// expires is when e stops being fresh.
func (e *Entry) expires() time.Time {
	return e.Timing.ResponseTime.Add(e.Lifetime - e.Timing.CorrectedInitialAge())
}

func (e *Entry) meta(size int64) storage.Meta {
	return storage.Meta{Key: e.Key, Header: encodeEntry(e), Size: size, Expires: e.expires(), Tags: e.Tags}
}

// writeQueue bounds the write-behind: the copies pending at once, by
// count and by the body bytes they keep alive. Copies commit in batches
// (each waits in a 20 ms batchWindow for others to share its index
// transaction), so many are pending at once by design; a copy that finds
// the queue full is skipped, and an object memory then drops is one the
// origin serves again.
type writeQueue struct {
	mu              sync.Mutex
	n, maxN         int
	bytes, maxBytes int64
}

// take reserves room for a copy of size bytes; false when the queue is full.
func (q *writeQueue) take(size int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= q.maxN || q.bytes+size > q.maxBytes {
		return false
	}
	q.n++
	q.bytes += size
	return true
}

func (q *writeQueue) done(size int64) {
	q.mu.Lock()
	q.n--
	q.bytes -= size
	q.mu.Unlock()
}

// writeBatchLinger is how long the first write-behind copy of a batch
// waits for others (see batchWindow), and writeBatchMax how many end the
// wait at once.
const (
	writeBatchLinger = 20 * time.Millisecond
	writeBatchMax    = 256
)

// batchWindow holds write-behind copies for a moment and lets them go
// together, so that their index commits share a transaction (the store's
// group commit merges the commits that queue while one is running). A
// random insert into the index costs about 50 µs of CPU in a transaction
// of its own and half that in one of 16 or more; without the window a busy
// cache commits its copies one per transaction, since each is ready at a
// different moment. The wait comes before the copy takes the invalidation
// gate (unlessInvalidated), so a purge never waits for it, and no client
// waits for a write-behind.
type batchWindow struct {
	linger time.Duration
	max    int

	mu sync.Mutex
	ch chan struct{} // the open window; nil when none is
	n  int           // copies waiting in it
}

// wait joins the open window, opening one if none is, and returns when it
// closes: linger after it opened, or as its max-th copy joins.
func (w *batchWindow) wait() {
	w.mu.Lock()
	if w.ch == nil {
		ch := make(chan struct{})
		w.ch, w.n = ch, 0
		time.AfterFunc(w.linger, func() {
			w.mu.Lock()
			w.closeLocked(ch)
			w.mu.Unlock()
		})
	}
	ch := w.ch
	if w.n++; w.n >= w.max {
		w.closeLocked(ch)
	}
	w.mu.Unlock()
	<-ch
}

func (w *batchWindow) closeLocked(ch chan struct{}) {
	if w.ch == ch {
		close(ch)
		w.ch = nil
	}
}

// writeBehind copies an entry filled into memory to the disk tier in the
// background, so that it outlives memory eviction and restarts. When the
// write queue is full (Config.WriteBehind, WriteBehindBytes) it is skipped
// (and counted): the entry stays in memory only.
func (c *Cache) writeBehind(d *storage.Store, e *Entry, start uint64) {
	size := int64(len(e.Body))
	if !c.writeQ.take(size) {
		c.m.diskWrites.WithLabelValues("skipped").Inc()
		dropOlder(d, e, false)
		return
	}
	c.writers.Add(1)
	go func() {
		defer func() { c.writeQ.done(size); c.writers.Done() }()
		if c.beforeWriteBehind != nil {
			c.beforeWriteBehind()
		}
		w, err := d.Create(e.Key)
		if err != nil {
			c.m.diskWrites.WithLabelValues("error").Inc()
			return
		}
		defer w.Close()
		if _, err := w.WriteShared(e.Body); err != nil { // e.Body is never modified
			w.Abort()
			c.m.diskWrites.WithLabelValues("error").Inc()
			return
		}
		// The body goes to disk now; its index commit waits for the
		// window, to share a transaction with the copies around it.
		if err := w.Prepare(); err != nil {
			c.m.diskWrites.WithLabelValues("error").Inc()
			c.warnDisk("disk write failed", "key", e.Key, "err", err)
			return
		}
		c.writeBatch.wait()
		if !c.unlessInvalidated(e, start, func() { err = w.CommitBatched(e.meta(int64(len(e.Body)))) }) {
			w.Abort()
			c.m.diskWrites.WithLabelValues("invalidated").Inc()
			return
		}
		if err != nil {
			c.m.diskWrites.WithLabelValues("error").Inc()
			c.warnDisk("disk write failed", "key", e.Key, "err", err)
			return
		}
		c.m.diskWrites.WithLabelValues("stored").Inc()
	}()
}

// pump copies a streaming fill's origin body into the disk tier, waking its
// readers as bytes arrive, and commits it when complete.
func (c *Cache) pump(f *flight, skey string, body io.ReadCloser, start uint64, reqTime time.Time) {
	defer body.Close()
	st := f.stream
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var err error
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			switch {
			case st.degraded():
				if !st.appendTail(buf[:n]) {
					err = fmt.Errorf("disk failed and the body outgrew %d bytes of memory", maxStreamTail)
				}
			default:
				if _, werr := st.w.Write(buf[:n]); werr != nil {
					// Disk full, read-only, over budget: keep serving the
					// readers from memory; the object will not be stored.
					c.m.diskWrites.WithLabelValues("error").Inc()
					c.warnDisk("disk write failed during a fill; finishing it from memory, unstored", "key", st.entry.Key, "err", werr)
					if !st.appendTail(buf[:n]) {
						err = fmt.Errorf("disk failed and the body outgrew %d bytes of memory", maxStreamTail)
					}
				} else {
					st.progress(n)
				}
			}
			if err != nil {
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	c.endStream(f, skey, err, start, reqTime)
}

// endStream ends a streaming fill whose body loop ended with err: it
// commits a complete body, then lets the flight leave the table and wakes
// its readers. A failed fill leaves the table and fails its readers before
// its file is discarded, so no reader (nor a later arrival) reads a file
// that is gone.
func (c *Cache) endStream(f *flight, skey string, err error, start uint64, reqTime time.Time) {
	st := f.stream
	defer f.release() // the pump's reference
	written := st.w.Written()
	if err == nil && st.size >= 0 && written != st.size {
		err = io.ErrUnexpectedEOF
	}
	unstored := err == nil && st.degraded()
	if err == nil && !unstored {
		// The stored copy gets the length the live one could not announce.
		e := *st.entry
		e.Header, e.Memo = e.Header.Clone(), new(Memo)
		e.Header.Set("Content-Length", itoa(written))
		if !c.unlessInvalidated(&e, start, func() { err = st.w.Commit(e.meta(written)) }) {
			err = errInvalidated
		}
	}
	// No later arrival joins a finished stream: it finds the object in the
	// tier, or fetches again.
	c.flights.remove(skey, f)
	c.flights.remove(st.entry.Key, f)
	st.finish(err)
	switch {
	case unstored:
		// Complete for its readers; the writer is aborted when the last
		// of them lets go (Close of an uncommitted writer).
		c.m.fills.WithLabelValues("not_stored_disk_error").Inc()
	case err != nil:
		st.w.Abort()
		if errors.Is(err, errInvalidated) {
			c.m.fills.WithLabelValues("invalidated").Inc()
		} else {
			c.m.fills.WithLabelValues("error").Inc()
			c.log.Warn("streaming fill failed", "key", st.entry.Key, "err", err)
		}
	default:
		c.m.fills.WithLabelValues("stored").Inc()
		c.m.fillTime.Observe(c.now().Sub(reqTime).Seconds())
	}
}

var errInvalidated = errors.New("cache: invalidated while filling")

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// diskErrors rate-limits the log lines of disk-tier failures: a full or
// read-only disk fails every write, and one line per interval (with the
// count suppressed since) says as much as thousands.
type diskErrors struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const diskErrorLogInterval = 10 * time.Second

// warnDisk logs a disk-tier failure at most once per interval.
func (c *Cache) warnDisk(msg string, args ...any) {
	c.diskErr.mu.Lock()
	now := c.now()
	if now.Sub(c.diskErr.last) < diskErrorLogInterval {
		c.diskErr.suppressed++
		c.diskErr.mu.Unlock()
		return
	}
	n := c.diskErr.suppressed
	c.diskErr.last, c.diskErr.suppressed = now, 0
	c.diskErr.mu.Unlock()
	c.log.Warn(msg, append(args, "suppressed_since_last", n)...)
}

// dropOlder deletes the disk tier's version of e's key, if it has one,
// when e will not be written there (not admitted to disk, or its
// write-behind skipped) or holds a different representation (see
// sameRepresentation). Otherwise the disk's older version, still fresh by
// its own headers, could be served after e was: memory may evict e, or its
// admission refuse it, before e's write-behind lands (milliseconds), or e
// may never reach disk. Fills call it before e enters memory; requests in
// the window then miss and are filled again, coalesced as usual. A written
// refill of the same representation (the common case: an expired object
// refetched unchanged) keeps the disk copy, and a first fill costs a map
// lookup.
func dropOlder(d *storage.Store, e *Entry, written bool) {
	if !d.MayHave(e.Key) {
		return
	}
	if written {
		obj, err := d.Peek(e.Key)
		if err != nil {
			return // gone, or unreadable: nothing older will be served
		}
		old, derr := decodeEntry(obj.Meta.Header)
		size := obj.Meta.Size
		obj.Close()
		if derr == nil && sameRepresentation(old, size, e) {
			return
		}
	}
	d.Delete(e.Key)
}

// sameRepresentation reports whether a stored entry (of body size size)
// and a new fill e are the same representation, as far as their
// validators tell: the same status and ETag; without ETags, the same
// Last-Modified and length. Without either there is no telling, and the
// answer is no.
func sameRepresentation(old *Entry, size int64, e *Entry) bool {
	if old.Status != e.Status || old.Marker {
		return false
	}
	if et := e.Header.Get("ETag"); et != "" || old.Header.Get("ETag") != "" {
		return et == old.Header.Get("ETag")
	}
	lm := e.Header.Get("Last-Modified")
	return lm != "" && lm == old.Header.Get("Last-Modified") && size == int64(len(e.Body))
}
