package storage

import (
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

// openIndex opens index.db, moving it aside once if it is unreadable, then
// loads the in-memory eviction index.
func (s *Store) openIndex() error {
	path := filepath.Join(s.dir, "index.db")
	err := s.tryOpenIndex(path)
	if errors.Is(err, errUnreadableIndex) {
		aside := fmt.Sprintf("%s.corrupt-%d", path, s.now().Unix())
		for i := 1; ; i++ {
			if _, serr := os.Lstat(aside); errors.Is(serr, fs.ErrNotExist) {
				break
			}
			aside = fmt.Sprintf("%s.corrupt-%d.%d", path, s.now().Unix(), i)
		}
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("storage: moving unreadable index aside: %w (after %w)", rerr, err)
		}
		s.log.Error("storage: INDEX UNREADABLE, moved aside; starting with an empty cache",
			"index", path, "moved_to", aside, "err", err)
		s.movedAside = true
		err = s.tryOpenIndex(path)
	}
	return err
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
	if err := s.initIndex(); err != nil {
		return err
	}
	return s.loadIndex()
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

// loadIndex fills the in-memory eviction index from the objects bucket,
// dropping undecodable records (their blobs become orphans for recovery).
func (s *Store) loadIndex() error {
	var bad [][]byte
	var ents []*entry
	var total int64
	segOf := make(map[*entry]uint64) // packed entries' segment ids
	segEnd := make(map[uint64]int64) // the farthest body end each segment's entries name
	err := s.db.View(func(tx *bolt.Tx) error {
		r := new(record)
		return tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			err := decodeShadow(r, v)
			if err != nil || r.key != string(k) {
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			e := &entry{
				key: r.key, id: r.id, size: r.size,
				atime: timeToNanos(r.atime), expires: timeToNanos(r.expires),
			}
			ents = append(ents, e)
			total += r.size
			if r.seg != 0 {
				segOf[e] = r.seg
				segEnd[r.seg] = max(segEnd[r.seg], r.off+r.size)
			}
			return nil
		})
	})
	if err != nil {
		return errors.Join(errUnreadableIndex, err)
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
			return fmt.Errorf("storage: dropping bad records: %w", err)
		}
		s.recoveryDropped.Add(int64(len(bad)))
	}
	// Most recent first, then append in order: front = most recent.
	slices.SortFunc(ents, func(a, b *entry) int {
		switch {
		case a.atime > b.atime:
			return -1
		case a.atime < b.atime:
			return 1
		}
		return 0
	})
	s.lru.m = make(map[string]*entry, len(ents))
	for _, e := range ents {
		s.lru.m[e.key] = e
		s.lru.pushBack(e)
	}
	s.lru.bytes = total
	// Segments named by entries, sealed (a run never appends to an earlier
	// run's segment). Their files are opened on first read.
	for id, end := range segEnd {
		seg := newSegment(id)
		seg.sealed, seg.fileSize = true, 0
		if fi, err := os.Stat(s.segmentPath(id)); err == nil {
			seg.fileSize = fi.Size()
		}
		seg.written = max(seg.fileSize, end) // bodies past fileSize are dropped by recovery
		s.lru.segs[id] = seg
		s.lru.dead += seg.written
	}
	for _, e := range ents {
		if id, ok := segOf[e]; ok {
			s.lru.joinSegment(e, s.lru.segs[id])
		}
	}
	return nil
}
