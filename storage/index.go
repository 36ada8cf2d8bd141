package storage

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// errUnreadableIndex marks an index.db that is not a usable bbolt file of our
// format; openIndex moves such a file aside.
var errUnreadableIndex = errors.New("storage: unreadable index")

// openIndex opens index.db, moving it aside once if it is unreadable (or if
// an earlier run found it unreadable while loading it: the marker file).
func (s *Store) openIndex() error {
	path := filepath.Join(s.dir, "index.db")
	var err error
	if _, merr := os.Stat(path + unreadableMarker); merr == nil {
		err = errors.Join(errUnreadableIndex, errors.New("an earlier run could not read it"))
	} else {
		err = s.tryOpenIndex(path)
	}
	if errors.Is(err, errUnreadableIndex) {
		if err := s.moveAside(path, err); err != nil {
			return err
		}
		err = s.tryOpenIndex(path)
	}
	return err
}

// unreadableMarker, appended to index.db's path, names the file a run
// writes when it finds the index unreadable after Open returned: the next
// Open moves the index aside.
const unreadableMarker = ".unreadable"

// moveAside renames an unreadable index.db out of the way, logging why.
func (s *Store) moveAside(path string, cause error) error {
	aside := fmt.Sprintf("%s.corrupt-%d", path, s.now().Unix())
	for i := 1; ; i++ {
		if _, serr := os.Lstat(aside); errors.Is(serr, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.corrupt-%d.%d", path, s.now().Unix(), i)
	}
	if rerr := os.Rename(path, aside); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("storage: moving unreadable index aside: %w (after %w)", rerr, cause)
	}
	os.Remove(path + unreadableMarker)
	s.log.Error("storage: INDEX UNREADABLE, moved aside; starting with an empty cache",
		"index", path, "moved_to", aside, "err", cause)
	s.movedAside = true
	return nil
}

// tryOpenIndex opens, validates and loads the index at path. Corruption of
// any kind (bbolt refusing the file, a panic while reading it, a wrong format
// version) is reported as errUnreadableIndex; lock contention as ErrInUse.
func (s *Store) tryOpenIndex(path string) (err error) {
	// With FsyncNever the index is not fsynced either: bbolt's two meta
	// pages keep it consistent across process crashes (the page cache
	// survives them); after a power loss an unreadable index is moved
	// aside and the node starts empty, and a readable one can only name
	// blobs that exist, whose checksums catch any torn body.
	db, err := openBolt(path, &bolt.Options{Timeout: s.opts.OpenTimeout, NoSync: s.opts.Fsync == FsyncNever, NoFreelistSync: true})
	if err != nil {
		switch {
		case errors.Is(err, bolt.ErrTimeout):
			return fmt.Errorf("%w: %s (index lock not acquired within %s)", ErrInUse, s.dir, s.opts.OpenTimeout)
		case errors.As(err, new(*fs.PathError)):
			return fmt.Errorf("storage: opening index: %w", err)
		default:
			return errors.Join(errUnreadableIndex, err)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			err = errors.Join(errUnreadableIndex, fmt.Errorf("panic reading index: %v", p))
		}
		if err != nil {
			db.Close()
		}
	}()
	s.db = db
	return s.initIndex()
}

// openBolt is bolt.Open with panics (possible on garbage that passes the
// meta page checks) turned into errors.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("panic opening index: %v", p)
		}
	}()
	return bolt.Open(path, 0o644, o)
}

// initIndex creates the buckets, checks the format version and reserves this
// run's blob id range: ids are idBase<<32 | n, with idBase bumped at every
// Open, so ids never repeat and never derive from keys.
func (s *Store) initIndex() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Bucket(bucketObjects) != nil {
				return errors.Join(errUnreadableIndex, errors.New("meta bucket missing"))
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, []byte{formatVersion}); err != nil {
				return err
			}
			if err := meta.Put(keyLayout, []byte{layoutGrouped}); err != nil {
				return err
			}
			// A fresh index (possibly after moving a corrupt one aside)
			// starts its ids at the clock so they cannot collide with
			// orphans of an earlier index.
			if err := meta.Put(keyIDBase, binary.BigEndian.AppendUint64(nil, uint64(s.now().Unix()))); err != nil {
				return err
			}
			s.freshIndex = true
		}
		if v := meta.Get(keyFormat); len(v) != 1 || v[0] != formatVersion {
			return errors.Join(errUnreadableIndex, fmt.Errorf("unsupported index format %v", v))
		}
		switch l := meta.Get(keyLayout); {
		case l == nil:
			s.layout = layoutSpread // written before layouts were recorded
		case len(l) == 1 && (l[0] == layoutSpread || l[0] == layoutGrouped):
			s.layout = l[0]
		default:
			return errors.Join(errUnreadableIndex, fmt.Errorf("unsupported blob layout %v", l))
		}
		v := meta.Get(keyIDBase)
		if len(v) != 8 {
			return errors.Join(errUnreadableIndex, errors.New("bad id base"))
		}
		s.idBase = binary.BigEndian.Uint64(v)
		if err := meta.Put(keyIDBase, binary.BigEndian.AppendUint64(nil, s.idBase+1)); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketObjects, bucketTags} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// loaded is what loadIndex read from the index, before it is merged.
type loaded struct {
	ents   []*entry
	segIDs []uint64 // segIDs[i]: the segment of ents[i]'s body, 0 for a blob
	segEnd map[uint64]int64
	segLen map[uint64]int64 // segment file sizes (0: missing)
}

// loadIndex reads the objects bucket for the in-memory shadow index,
// dropping undecodable records (their blobs become orphans for recovery).
// It touches no shared state: mergeShadow installs the result. It stops
// early (with errStopped) when Close is called.
func (s *Store) loadIndex() (*loaded, error) {
	var bad [][]byte
	l := &loaded{segEnd: make(map[uint64]int64), segLen: make(map[uint64]int64)}
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		r := new(record)
		return tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			if n++; n%(64<<10) == 0 && s.stopping() {
				return errStopped
			}
			err := decodeShadow(r, v)
			if err != nil || r.key != string(k) {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			l.ents = append(l.ents, &entry{
				key: r.key, id: r.id, size: r.size,
				atime: timeToNanos(r.atime), expires: timeToNanos(r.expires),
			})
			l.segIDs = append(l.segIDs, r.seg)
			if r.seg != 0 {
				l.segEnd[r.seg] = max(l.segEnd[r.seg], r.off+r.size)
			}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, errStopped) {
			return nil, err
		}
		return nil, errors.Join(errUnreadableIndex, err)
	}
	if len(bad) > 0 {
		s.log.Warn("storage: dropping undecodable index records", "count", len(bad))
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, k := range bad {
				if _, err := deleteRecord(tx, string(k), 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("storage: dropping bad records: %w", err)
		}
		s.recoveryDropped.Add(int64(len(bad)))
	}
	for id := range l.segEnd {
		if fi, err := os.Stat(s.segmentPath(id)); err == nil {
			l.segLen[id] = fi.Size()
		}
	}
	// Most recent first, so that appending in order puts the most recent
	// at the front.
	idx := make([]int32, len(l.ents))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int { return cmp.Compare(l.ents[b].atime, l.ents[a].atime) })
	ents, segIDs := make([]*entry, len(idx)), make([]uint64, len(idx))
	for i, j := range idx {
		ents[i], segIDs[i] = l.ents[j], l.segIDs[j]
	}
	l.ents, l.segIDs = ents, segIDs
	return l, nil
}

// mergeShadow installs what loadIndex read into the shadow index, in
// chunks so that requests are not held up for the whole of a large index.
// Keys committed or removed since Open are newer than what was read and
// are skipped. Segments of earlier runs are sealed (a run never appends to
// them); those that readers registered meanwhile (provisionLocked) are
// completed. Segments left without entries are deleted at the end.
func (s *Store) mergeShadow(l *loaded) bool {
	const chunk = 16 << 10
	for start := 0; start < len(l.ents); start += chunk {
		if s.stopping() {
			return false
		}
		s.mu.Lock()
		for i := start; i < min(start+chunk, len(l.ents)); i++ {
			e := l.ents[i]
			if _, ok := s.lru.m[e.key]; ok {
				continue
			}
			if _, ok := s.lru.gone[e.key]; ok {
				continue
			}
			s.lru.m[e.key] = e
			s.lru.pushBack(e)
			s.lru.bytes += e.size
			if id := l.segIDs[i]; id != 0 {
				s.lru.joinSegment(e, s.segmentForLoadLocked(id, l.segLen[id], l.segEnd[id]))
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.lru.loading, s.lru.gone = false, nil
	for _, seg := range s.lru.segs {
		s.lru.maybeEmptied(seg)
	}
	emptied := s.takeEmptiedLocked()
	s.mu.Unlock()
	s.deleteSegments(emptied)
	return true
}

// segmentForLoadLocked returns the segment id, registering it (sealed, of
// an earlier run) if this is its first mention, and makes sure its size
// covers end, the farthest body the index names in it.
func (s *Store) segmentForLoadLocked(id uint64, fileSize, end int64) *segment {
	seg := s.lru.segs[id]
	if seg == nil {
		seg = newSegment(id)
		seg.sealed, seg.fileSize = true, fileSize
		s.lru.segs[id] = seg
	}
	// Bodies past the file's end are dropped by recovery; until then they
	// count as written so that dead = written - live stays >= 0.
	if w := max(seg.fileSize, end); w > seg.written {
		s.lru.dead += w - seg.written
		seg.written = w
	}
	return seg
}
