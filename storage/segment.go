package storage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Defaults for packing small bodies into segment files.
const (
	defaultSegmentBytes = 8 << 20
	defaultPackBelow    = BlockSize // one checksum block per packed body
	// packMinSegments: packing is on only when MaxBytes holds at least this
	// many segments, so that the dead bytes allowed to wait for compaction
	// (MaxBytes/deadFraction) span a couple of segments.
	packMinSegments = 16
	deadFraction    = 8
)

// A segment is one append-only file under segments/ holding packed bodies
// back to back. A region of it is written once, by the commit that reserved
// it, before the index names it; it is never written again, and the file is
// deleted as a whole when no index entry names any of its bodies. Readers
// share one descriptor per segment, counted in refs, so a segment deleted
// under a reader stays readable to it (Unix unlink semantics).
//
// Every field is guarded by Store.mu.
type segment struct {
	id uint64
	f  *os.File // nil until first read for segments of an earlier run
	// written is the bytes reserved in the segment: its file size once the
	// reservations in flight have landed. For a segment of an earlier run
	// it is the file's size at Open (or the end of the farthest body an
	// entry names, if larger: those entries are broken and recovery drops
	// them).
	written int64
	// fileSize is the file's size at Open for a segment of an earlier run
	// (a body ending past it is torn), MaxInt64 for this run's segments.
	fileSize int64
	live     int64 // bytes of the bodies index entries name
	count    int   // entries naming a body here
	pending  int   // reservations whose commit has not finished
	refs     int   // users of f, plus one for the store until dropped
	sealed   bool  // no more reservations (every segment but the active one)
	dropped  bool  // left the store: its file is unlinked, f closed at refs 0
	members  entry // sentinel of the list of entries naming a body here
}

func newSegment(id uint64) *segment {
	seg := &segment{id: id, refs: 1, fileSize: math.MaxInt64}
	seg.members.snext, seg.members.sprev = &seg.members, &seg.members
	return seg
}

func (s *Store) segmentPath(id uint64) string {
	return filepath.Join(s.dir, "segments", fmt.Sprintf("%016x", id))
}

// newID returns a fresh version (or segment) id: idBase<<32 | n, never
// repeated, since idBase is bumped at every Open.
func (s *Store) newID() (uint64, error) {
	n := s.idSeq.Add(1)
	if n >= 1<<32 {
		return 0, errors.New("storage: id range of this run exhausted; reopen the store")
	}
	return s.idBase<<32 | n, nil
}

// packs reports whether a body of n bytes is packed into a segment.
func (s *Store) packs(n int64) bool { return n <= s.packBelow }

// reserve reserves n bytes at the end of the active segment (opening a new
// one when they do not fit) and pins it: the segment is not deleted, and
// its descriptor not closed, until unpin. The reserved bytes count as dead
// until an index entry names them.
func (s *Store) reserve(n int64) (*segment, int64, error) {
	s.mu.Lock()
	if seg, off, ok := s.reserveLocked(n); ok {
		s.mu.Unlock()
		return seg, off, nil
	}
	s.mu.Unlock()
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	s.mu.Lock()
	if seg, off, ok := s.reserveLocked(n); ok { // another commit rotated
		s.mu.Unlock()
		return seg, off, nil
	}
	s.mu.Unlock()
	seg, err := s.createSegment()
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	if old := s.active; old != nil {
		old.sealed = true
		s.lru.maybeEmptied(old)
	}
	s.active = seg
	s.lru.segs[seg.id] = seg
	seg, off, _ := s.reserveLocked(n)
	emptied := s.takeEmptiedLocked()
	s.mu.Unlock()
	s.deleteSegments(emptied)
	return seg, off, nil
}

// appendPacked reserves room for body in the active segment and writes
// it there. The segment stays pinned: the caller unpins it once its index
// commit is done.
func (s *Store) appendPacked(body []byte) (*segment, int64, error) {
	seg, off, err := s.reserve(int64(len(body)))
	if err != nil {
		return nil, 0, err
	}
	if _, err := seg.f.WriteAt(body, off); err != nil {
		s.unpin(seg)
		return nil, 0, fmt.Errorf("storage: writing segment: %w", err)
	}
	return seg, off, nil
}

func (s *Store) reserveLocked(n int64) (*segment, int64, bool) {
	seg := s.active
	if seg == nil || seg.written+n > s.segmentBytes && seg.written > 0 {
		return nil, 0, false
	}
	off := seg.written
	seg.written += n
	s.lru.dead += n
	seg.pending++
	seg.refs++
	return seg, off, true
}

// createSegment creates a new, empty segment file (its directory entry
// fsynced under FsyncAlways, so an index entry never names a segment that
// a power loss could take away).
func (s *Store) createSegment() (*segment, error) {
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.segmentPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: creating segment: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		if err := syncDir(filepath.Dir(f.Name())); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
	}
	seg := newSegment(id)
	seg.f = f
	return seg, nil
}

// unpin ends a reservation made by reserve, whether or not an index entry
// now names it.
func (s *Store) unpin(seg *segment) {
	s.mu.Lock()
	seg.pending--
	s.unrefLocked(seg)
	s.lru.maybeEmptied(seg)
	emptied := s.takeEmptiedLocked()
	s.mu.Unlock()
	s.deleteSegments(emptied)
}

// acquireSegment returns segment id with a reference taken and its file
// open, or nil when the store has no such segment (or its file cannot be
// opened). The caller releases it with releaseSegment.
func (s *Store) acquireSegment(id uint64) (*segment, error) {
	s.mu.Lock()
	seg := s.segmentOfLocked(id)
	if seg == nil || seg.dropped {
		s.mu.Unlock()
		return nil, nil
	}
	seg.refs++
	f := seg.f
	s.mu.Unlock()
	if f != nil {
		return seg, nil
	}
	nf, err := os.Open(s.segmentPath(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.unrefLocked(seg)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("storage: opening segment: %w", err)
	case seg.f == nil:
		seg.f = nf
	default:
		nf.Close() // another reader opened it first
	}
	return seg, nil
}

// segmentOfLocked returns segment id. While the index is being loaded, a
// segment of an earlier run that the load has not reached yet is
// registered here, from its file (a reader or a revalidation got to it
// first); nil if the file is missing.
func (s *Store) segmentOfLocked(id uint64) *segment {
	if id == 0 {
		return nil
	}
	seg := s.lru.segs[id]
	if seg != nil || !s.lru.loading {
		return seg
	}
	fi, err := os.Stat(s.segmentPath(id))
	if err != nil {
		return nil
	}
	return s.segmentForLoadLocked(id, fi.Size(), 0)
}

func (s *Store) releaseSegment(seg *segment) {
	s.mu.Lock()
	s.unrefLocked(seg)
	s.mu.Unlock()
}

func (s *Store) unrefLocked(seg *segment) {
	seg.refs--
	if seg.refs == 0 && seg.f != nil {
		seg.f.Close()
		seg.f = nil
	}
}

func (s *Store) takeEmptiedLocked() []*segment {
	e := s.lru.emptied
	s.lru.emptied = nil
	return e
}

// reapSegments deletes the segments that lost their last entry.
func (s *Store) reapSegments() {
	s.mu.Lock()
	emptied := s.takeEmptiedLocked()
	s.mu.Unlock()
	s.deleteSegments(emptied)
}

// deleteSegments unlinks the files of segments that left the store and
// drops the store's reference to them (readers keep theirs).
func (s *Store) deleteSegments(segs []*segment) {
	for _, seg := range segs {
		if err := os.Remove(s.segmentPath(seg.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("storage: removing segment", "id", seg.id, "err", err)
		}
		s.segmentsDeleted.Add(1)
		s.mu.Lock()
		s.unrefLocked(seg)
		s.mu.Unlock()
	}
}

// mostDeadLocked returns the sealed segment with the most dead bytes, for
// compaction, or nil.
func (s *Store) mostDeadLocked() *segment {
	var best *segment
	for _, seg := range s.lru.segs {
		if seg.sealed && seg.pending == 0 && !seg.dropped && (best == nil || seg.written-seg.live > best.written-best.live) {
			best = seg
		}
	}
	if best != nil && best.written == best.live {
		return nil
	}
	return best
}

// compact moves the bodies still named in seg to the active segment, after
// which seg holds none and is deleted. Each body is read and verified,
// appended, and its entry repointed only if it still names that version
// (the key may have been overwritten, purged or evicted meanwhile); its
// place in the recency order and its access time are kept. A body that
// fails its checksum is dropped, as on any read.
func (s *Store) compact(seg *segment) {
	type member struct {
		key string
		id  uint64
	}
	s.mu.Lock()
	if seg.dropped {
		s.mu.Unlock()
		return
	}
	var ms []member
	for e := seg.members.snext; e != &seg.members; e = e.snext {
		ms = append(ms, member{e.key, e.id})
	}
	seg.refs++
	s.mu.Unlock()
	defer func() {
		s.releaseSegment(seg)
		s.reapSegments()
	}()
	s.compactions.Add(1)
	for _, m := range ms {
		if s.stopping() {
			return
		}
		if err := s.relocate(seg, m.key, m.id); err != nil {
			s.log.Error("storage: compaction: moving a body", "key", m.key, "err", err)
			return
		}
	}
}

// relocate moves the body of key's version id out of seg (see compact).
func (s *Store) relocate(seg *segment, key string, id uint64) error {
	r, err := s.lookup(key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.id != id || r.seg != seg.id {
		return nil
	}
	if err := s.acquireFile(seg); err != nil {
		return err
	}
	o := &Object{Meta: Meta{Key: key, Size: r.size}, s: s, id: r.id, seg: seg, base: r.off, f: seg.f, blockSize: r.blockSize, crcs: r.crcs}
	body, err := o.ReadAll()
	s.releaseSegment(seg)
	if errors.Is(err, ErrCorrupt) {
		return nil // dropped
	}
	if err != nil {
		return err
	}
	to, off, err := s.appendPacked(body)
	if err != nil {
		return err
	}
	defer s.unpin(to)
	nr := *r
	if nr.id, err = s.newID(); err != nil {
		return err
	}
	nr.seg, nr.off = to.id, off
	enc := encodeRecord(nil, &nr)
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	moved := false
	err = s.groupUpdateSync(to, false, func(tx *bolt.Tx) error {
		moved = false
		objs := tx.Bucket(bucketObjects)
		v := objs.Get([]byte(key))
		if v == nil {
			return nil
		}
		cur, derr := decodeRecord(v)
		if derr != nil || cur.id != id {
			return nil
		}
		moved = true
		return objs.Put([]byte(key), enc)
	})
	if err != nil {
		return fmt.Errorf("storage: compaction: committing index: %w", err)
	}
	if moved {
		s.mu.Lock()
		s.lru.move(key, id, nr.id, to)
		s.mu.Unlock()
		s.relocated.Add(1)
	}
	return nil
}

// acquireFile takes a reference on a segment the caller already holds one
// on, opening its file if needed.
func (s *Store) acquireFile(seg *segment) error {
	got, err := s.acquireSegment(seg.id)
	if err != nil {
		return err
	}
	if got == nil {
		return fmt.Errorf("storage: segment %016x is gone", seg.id)
	}
	return nil
}

// segmentFiles lists the files under segments/ with the ids their names
// parse as (ok false for a name that is not a segment id).
func (s *Store) segmentFiles() []blobFile {
	dir := filepath.Join(s.dir, "segments")
	ents, _ := os.ReadDir(dir)
	var out []blobFile
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 16, 64)
		out = append(out, blobFile{filepath.Join(dir, e.Name()), id, err == nil && len(e.Name()) == 16 && !e.IsDir()})
	}
	return out
}
