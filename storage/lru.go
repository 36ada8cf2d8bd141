package storage

// entry is the in-memory shadow of one index record: just enough to account
// bytes, order eviction and batch access-time writes. It is deliberately small
// (the index may hold millions of objects); see BenchmarkIndexMemory100k.
type entry struct {
	key        string
	id         uint64   // version id of the indexed version
	seg        *segment // the segment holding a packed body; nil for a blob
	size       int64
	atime      int64 // Unix nanoseconds of the last access
	expires    int64 // Unix nanoseconds; 0 = unknown
	prev, next *entry
	// sprev, snext link the entries of one segment (for compaction).
	sprev, snext *entry
	dirty        bool // atime not yet flushed to the index
}

// lru is an unsynchronized map + intrusive doubly linked list ordered by
// access (front = most recent). Store guards it with Store.mu.
type lru struct {
	m     map[string]*entry
	root  entry // sentinel: root.next is the front, root.prev the back
	bytes int64
	dirty []*entry // entries whose atime changed since the last flush

	// segs are the segment files by id; dead is the sum of their bytes
	// that no entry names (written - live), which compaction reclaims.
	segs    map[uint64]*segment
	dead    int64
	emptied []*segment // sealed segments that lost their last entry; the store deletes them

	// While the index is loaded in the background (loading), keys removed
	// meanwhile are remembered in gone, so that the load does not bring
	// them back, and no segment is deleted (the load may still add entries
	// to it).
	loading bool
	gone    map[string]struct{}
}

func newLRU() *lru {
	l := &lru{m: make(map[string]*entry), segs: make(map[uint64]*segment)}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}

func (l *lru) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (l *lru) pushFront(e *entry) {
	e.prev = &l.root
	e.next = l.root.next
	l.root.next.prev = e
	l.root.next = e
}

func (l *lru) pushBack(e *entry) {
	e.next = &l.root
	e.prev = l.root.prev
	l.root.prev.next = e
	l.root.prev = e
}

// set installs (or replaces) the entry for key as the most recently used;
// seg is the segment of a packed body (nil for a blob file).
func (l *lru) set(key string, id uint64, seg *segment, size, atime, expires int64) {
	e := l.m[key]
	var old *segment
	if e != nil {
		l.bytes -= e.size
		l.unlink(e)
		old = l.detach(e)
	} else {
		e = &entry{key: key}
		l.m[key] = e
	}
	e.id, e.size, e.atime, e.expires = id, size, atime, expires
	l.bytes += size
	l.pushFront(e)
	l.joinSegment(e, seg)
	if old != nil {
		l.maybeEmptied(old) // after joining: the same segment is not emptied
	}
}

// remove deletes key if its entry names version id (id 0 matches any).
func (l *lru) remove(key string, id uint64) bool {
	if l.loading {
		l.gone[key] = struct{}{}
	}
	e := l.m[key]
	if e == nil || (id != 0 && e.id != id) {
		return false
	}
	l.unlink(e)
	delete(l.m, key)
	l.bytes -= e.size
	l.leaveSegment(e)
	return true
}

// move points key's entry, if it still names version id, at version newID
// in segment seg, keeping its place in the recency order (compaction).
func (l *lru) move(key string, id, newID uint64, seg *segment) bool {
	e := l.m[key]
	if e == nil || e.id != id {
		return false
	}
	old := l.detach(e)
	e.id = newID
	l.joinSegment(e, seg)
	if old != nil {
		l.maybeEmptied(old)
	}
	return true
}

// joinSegment counts e's body as live in seg (nil: a blob, nothing to do).
func (l *lru) joinSegment(e *entry, seg *segment) {
	e.seg = seg
	if seg == nil {
		return
	}
	seg.live += e.size
	seg.count++
	l.dead -= e.size
	e.sprev, e.snext = &seg.members, seg.members.snext
	seg.members.snext.sprev = e
	seg.members.snext = e
}

// leaveSegment turns e's packed body into dead bytes of its segment,
// queueing the segment for deletion when it is sealed and now empty.
func (l *lru) leaveSegment(e *entry) {
	if seg := l.detach(e); seg != nil {
		l.maybeEmptied(seg)
	}
}

// detach is leaveSegment without the deletion check; it returns the
// segment e left, if any.
func (l *lru) detach(e *entry) *segment {
	seg := e.seg
	if seg == nil {
		return nil
	}
	e.seg = nil
	e.sprev.snext = e.snext
	e.snext.sprev = e.sprev
	e.sprev, e.snext = nil, nil
	seg.live -= e.size
	seg.count--
	l.dead += e.size
	return seg
}

// maybeEmptied queues seg for deletion when nothing can still name it: it
// is sealed, holds no entry and no commit into it is in flight.
func (l *lru) maybeEmptied(seg *segment) {
	if seg.sealed && seg.count == 0 && seg.pending == 0 && !seg.dropped && !l.loading {
		seg.dropped = true
		delete(l.segs, seg.id)
		l.dead -= seg.written - seg.live
		l.emptied = append(l.emptied, seg)
	}
}

// touch records an access at atime and moves the entry to the front.
func (l *lru) touch(key string, atime int64) {
	e := l.m[key]
	if e == nil {
		return
	}
	e.atime = atime
	l.unlink(e)
	l.pushFront(e)
	if !e.dirty {
		e.dirty = true
		l.dirty = append(l.dirty, e)
	}
}

// victim names an index entry chosen for removal.
type victim struct {
	key string
	id  uint64
	seg uint64 // set on removed entries: the segment of a packed body
}

// pickVictims chooses entries whose sizes add up to at least need bytes,
// at most max of them. Within the expiredWindow coldest entries, ones already
// expired at now go first; then plain least-recently-used order, which
// goes on past need while the next entry still fits within need+slack.
func (l *lru) pickVictims(need, slack int64, max, expiredWindow int, now int64) []victim {
	var out []victim
	var picked map[*entry]bool
	var got int64
	i := 0
	for e := l.root.prev; e != &l.root && i < expiredWindow && got < need && len(out) < max; e = e.prev {
		i++
		if e.expires != 0 && e.expires < now {
			if picked == nil {
				picked = make(map[*entry]bool)
			}
			picked[e] = true
			out = append(out, victim{key: e.key, id: e.id})
			got += e.size
		}
	}
	for e := l.root.prev; e != &l.root && len(out) < max; e = e.prev {
		if got >= need && got+e.size > need+slack {
			break
		}
		if picked[e] {
			continue
		}
		out = append(out, victim{key: e.key, id: e.id})
		got += e.size
	}
	return out
}

// hottest lists keys from the most recently used down, skipping entries
// larger than maxObject, until their sizes would exceed budget or limit
// keys are listed, scanning at most scan entries.
func (l *lru) hottest(budget, maxObject int64, limit, scan int) []string {
	var out []string
	var got int64
	i := 0
	for e := l.root.next; e != &l.root && len(out) < limit && i < scan; e = e.next {
		i++
		if e.size > maxObject {
			continue
		}
		if got+e.size > budget {
			break
		}
		got += e.size
		out = append(out, e.key)
	}
	return out
}
