package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// tier is one level of the cache. The cache walks its tiers in order
// (memory, then disk): a lookup stops at the first that holds the key and
// promotes what a lower tier found into the tiers above it; stores, purges
// and invalidations go to every tier.
type tier interface {
	// get returns the entry stored under key (primary is its primary key),
	// with its disk object open when the body is not held in the entry.
	get(key, primary string) (stored, bool)
	// put stores e in the tier, how says in what role; a tier may decline
	// (too large, or busy) and reports whether it took e. start is the
	// invalidation sequence of the fill that made e.
	put(e *Entry, how putKind, start uint64) bool
	// remove removes what sel matches (sel.soft: marks it stale instead)
	// and reports, per stored object (Vary markers excluded), which kinds
	// of selector matched it.
	remove(ctx context.Context, sel *keySelector, now time.Time) (map[string]match, error)
}

// putKind is why an entry is put into a tier.
type putKind uint8

const (
	putFill putKind = iota // a new response, body in e.Body
	// putFillMemory is a new response the disk tier's doorkeeper did not
	// admit: for the memory tier only.
	putFillMemory
	putPromote // a copy of what a lower tier holds
	putRefresh // new metadata (a 304) for the body the tier holds
)

// tierList returns the cache's tiers, in lookup order.
func (c *Cache) tierList() []tier { return *c.tiers.Load() }

// addTier appends t to the tiers.
func (c *Cache) addTier(t tier) {
	for {
		old := c.tiers.Load()
		next := append(append(make([]tier, 0, len(*old)+1), *old...), t)
		if c.tiers.CompareAndSwap(old, &next) {
			return
		}
	}
}

// streamer is a tier that can take a body while it is being filled: the
// read-while-write stream of a large or unknown-length fill.
type streamer interface {
	create(key string) (*storage.Writer, error)
}

// streamTier returns the first tier that takes streams, or nil.
func (c *Cache) streamTier() streamer {
	for _, t := range c.tierList() {
		if s, ok := t.(streamer); ok {
			return s
		}
	}
	return nil
}

// load looks key up tier by tier. What a lower tier holds is promoted to
// the tiers above when it needs no body (a Vary marker); a body is
// promoted by serve once it has been read and verified.
func (c *Cache) load(key, primary string) (stored, bool) {
	ts := c.tierList()
	for i, t := range ts {
		st, ok := t.get(key, primary)
		if !ok {
			continue
		}
		st.tier = i
		if st.e.Marker && i > 0 {
			c.promote(st.e, ts[:i])
		}
		return st, true
	}
	return stored{}, false
}

// promote copies an entry found in a lower tier into the tiers above,
// unless an invalidation of it is on record. A purge records itself,
// scans memory, then deletes from disk: a disk read that came before the
// delete and a copy into memory after the scan would put the purged object
// back in memory for good. Under the gate, either the copy lands before the
// record (and the purge's scan finds it) or it sees the record and is
// dropped; any retained record counts (start 0), because the disk read may
// postdate the record yet predate the delete. It reports whether a tier
// took e.
func (c *Cache) promote(e *Entry, above []tier) bool {
	if c.beforePromote != nil {
		c.beforePromote()
	}
	took := false
	c.unlessInvalidated(e, 0, func() {
		for _, t := range above {
			took = t.put(e, putPromote, 0) || took
		}
	})
	return took
}

// putAll stores e in every tier and reports whether any took it.
func (c *Cache) putAll(e *Entry, how putKind, start uint64) bool {
	took := false
	for _, t := range c.tierList() {
		took = t.put(e, how, start) || took
	}
	return took
}

// memTier is the memory tier as a tier.
type memTier struct{ m *memoryTier }

func (t memTier) get(key, _ string) (stored, bool) {
	e, ok := t.m.get(key)
	return stored{e: e}, ok
}

func (t memTier) put(e *Entry, how putKind, _ uint64) bool {
	if e.Body == nil && !e.Marker {
		return false // the body is elsewhere: nothing to serve from memory
	}
	return t.m.set(e)
}

func (t memTier) remove(_ context.Context, sel *keySelector, now time.Time) (map[string]match, error) {
	if sel.keysOnly {
		// An invalidation: its variants become unreachable with the marker.
		for _, k := range sel.urlKeys {
			t.m.del(k)
		}
		return nil, nil
	}
	found := make(map[string]match)
	var hits []*Entry
	t.m.c.IterValues(func(e *Entry) bool {
		if m := sel.matchEntry(e); m.any() {
			hits = append(hits, e)
			if k := countedKey(e.Key); !e.Marker && !isCodedKey(k) {
				found[k] = found[k].merge(m)
			}
		}
		return false
	})
	for _, e := range hits {
		switch {
		case !sel.soft:
			t.m.del(e.Key)
		case !e.Marker: // a soft purge keeps markers: the variants stay reachable
			t.m.set(e.softened(now))
		}
	}
	return found, nil
}

// diskTier is the disk tier (storage) as a tier.
type diskTier struct {
	c *Cache
	s *storage.Store
}

func (t diskTier) create(key string) (*storage.Writer, error) { return t.s.Create(key) }

// get reads key's entry; a primary key's Vary marker is kept under
// markerKey on disk.
func (t diskTier) get(key, primary string) (stored, bool) {
	st, ok := t.getKey(key, primary)
	if !ok && key == primary {
		st, ok = t.getKey(markerKey(primary), primary)
	}
	return st, ok
}

func (t diskTier) getKey(key, primary string) (stored, bool) {
	obj, err := t.s.Get(key)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			t.c.warnDisk("disk tier lookup failed", "key", key, "err", err)
		}
		return stored{}, false
	}
	e, err := decodeEntry(obj.Meta.Header)
	if err != nil {
		obj.Close()
		t.c.log.Warn("dropping undecodable disk entry", "key", key, "err", err)
		t.s.Delete(key)
		return stored{}, false
	}
	e.Key, e.Primary = key, primary
	e.withCodedKeys()
	if e.Marker {
		obj.Close()
		e.Key = primary
		return stored{e: e}, true
	}
	return stored{e: e, obj: obj}, true
}

func (t diskTier) put(e *Entry, how putKind, start uint64) bool {
	switch {
	case how == putPromote:
		return false // it came from here
	case how == putFillMemory:
		return false // not admitted (admit.go); storeFilled dropped the older version
	case e.Marker:
		if err := t.writeMarker(e); err != nil {
			t.c.warnDisk("disk tier: storing a Vary marker failed", "key", e.Primary, "err", err)
			return false
		}
		return true
	case how == putRefresh:
		err := t.s.UpdateMeta(e.Key, encodeEntry(e), e.expires())
		if err != nil && e.Body == nil {
			t.c.warnDisk("disk tier: updating a revalidated entry failed", "key", e.Key, "err", err)
		}
		// With the body in memory the write-behind may not have landed yet.
		return err == nil
	}
	t.c.writeBehind(t.s, e, start)
	return true
}

// writeMarker stores a Vary marker on disk at once.
func (t diskTier) writeMarker(e *Entry) error {
	w, err := t.s.Create(markerKey(e.Primary))
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Commit(e.meta(0))
}

func (t diskTier) remove(ctx context.Context, sel *keySelector, now time.Time) (map[string]match, error) {
	keys, found := t.scan(sel)
	var errs []error
	if sel.soft {
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := t.soften(k, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
		}
	} else if len(keys) > 0 {
		if _, err := t.s.DeleteKeys(keys); err != nil {
			errs = append(errs, err)
		}
	}
	for k, m := range found {
		if isMarkerKey(k) || isCodedKey(k) { // a Vary marker, a compressed variant: not objects to count
			delete(found, k)
		} else if obj := countedKey(k); obj != k { // a slice counts as its object
			delete(found, k)
			found[obj] = found[obj].merge(m)
		}
	}
	return found, errors.Join(errs...)
}

// scan collects the disk keys sel matches, markers included, in the order
// the index yields them (deleting in index order keeps the index's page
// writes and the blob unlinks local: a random order made a 100k-object
// purge three times slower).
func (t diskTier) scan(sel *keySelector) ([]string, map[string]match) {
	var keys []string
	found := make(map[string]match)
	mark := func(k string, m match) {
		old, seen := found[k]
		if !seen {
			keys = append(keys, k)
		}
		found[k] = old.merge(m)
	}
	add := func(m match) func(string) bool {
		return func(k string) bool { mark(k, m); return true }
	}
	for _, k := range sel.urlKeys {
		// The key, then its marker and variants (k + NUL + ...) and the
		// keys the edge's rules extend (k + KeyExtraSep + ...), sort
		// before every other longer key: stop at the first that is none.
		t.s.KeysWithPrefix(k, func(v string) bool {
			if v != k && !strings.HasPrefix(v, k+"\x00") && !strings.HasPrefix(v, k+KeyExtraSep) {
				return false
			}
			mark(v, match{urls: true})
			return true
		})
	}
	for _, p := range sel.prefixes {
		t.s.KeysWithPrefix(p, add(match{prefixes: true}))
	}
	for _, p := range sel.hostPrefixes {
		t.s.KeysWithPrefix(p, add(match{hosts: true}))
	}
	for _, tag := range sel.tags {
		t.s.KeysByTag(tag, add(match{tags: true}))
	}
	return keys, found
}

// soften marks the disk object under key stale.
func (t diskTier) soften(key string, now time.Time) error {
	obj, err := t.s.Get(key)
	if err != nil {
		return err
	}
	hdr := obj.Meta.Header
	obj.Close()
	e, err := decodeEntry(hdr)
	if err != nil {
		return t.s.Delete(key) // unreadable: a hard purge is the safe answer
	}
	if e.Marker {
		return nil
	}
	s := e.softened(now)
	return t.s.UpdateMeta(key, encodeEntry(s), s.expires())
}
