package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Orphan safety: blob files are listed before the index is read, so a blob
// indexed before that read is seen as referenced; a blob renamed in after
// the read was registered in s.fresh by Commit before its rename, and fresh
// ids are never deleted.
// runLoad loads the shadow index in the background (Open waits for it up
// to LoadWait), evicts if the store is over budget, then runs recovery.
// An index that turns out unreadable (bbolt fails or panics reading it)
// fails the store: every operation returns ErrUnreadable, and a marker
// file makes the next Open move the index aside.
func (s *Store) runLoad() {
	defer s.bg.Done()
	defer func() {
		s.mu.Lock()
		s.fresh = nil
		s.mu.Unlock()
		close(s.recoveryDone)
	}()
	start := time.Now()
	l, err := s.loadSafely()
	if err == nil && s.mergeShadow(l) {
		close(s.loaded)
		s.log.Info("storage: index loaded", "objects", len(l.ents), "took", time.Since(start))
		if s.begin() == nil {
			s.evict()
			s.end()
		}
		s.recover()
		return
	}
	if errors.Is(err, errUnreadableIndex) {
		s.failed.Store(true)
		s.log.Error("storage: INDEX UNREADABLE while loading it; the disk tier is off until the next start, which moves it aside", "err", err)
		if werr := os.WriteFile(filepath.Join(s.dir, "index.db"+unreadableMarker), []byte(err.Error()+"\n"), 0o644); werr != nil {
			s.log.Error("storage: writing the unreadable-index marker", "err", werr)
		}
	} else if err != nil && !errors.Is(err, errStopped) {
		s.log.Error("storage: loading the index", "err", err)
	}
	close(s.loaded)
}

// loadSafely is loadIndex with a panic (bbolt on some corrupt pages) turned
// into errUnreadableIndex.
func (s *Store) loadSafely() (l *loaded, err error) {
	defer func() {
		if p := recover(); p != nil {
			l, err = nil, errors.Join(errUnreadableIndex, fmt.Errorf("panic reading index: %v", p))
		}
	}()
	if err := s.begin(); err != nil {
		return nil, errStopped
	}
	defer s.end()
	return s.loadIndex()
}

// recover runs once per Open, after the load: it drops entries whose body
// is missing or short, deletes blob and segment files no entry names, and
// removes tag rows that point at nothing. It stops early on Close.
func (s *Store) recover() {
	start := time.Now()
	if !s.dropBrokenEntries() || !s.deleteOrphanBlobs() || !s.deleteDanglingTags() {
		return
	}
	st := s.Stats()
	s.log.Info("storage: recovery done", "objects", st.Objects, "bytes", st.Bytes,
		"dropped_entries", st.RecoveryDroppedEntries, "deleted_orphans", st.RecoveryDeletedOrphans,
		"took", time.Since(start))
}

// stopping reports whether Close has asked background work to stop.
func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// dropBrokenEntries is recovery step 1: it removes the entries whose blob is
// missing or has the wrong size. It reports whether recovery may go on.
func (s *Store) dropBrokenEntries() bool {
	type ent struct {
		victim
		size int64
	}
	// A packed body is broken when its segment file is missing or ends
	// before it does (a torn segment after a power loss with FsyncNever);
	// each segment's size is read once, and packed entries are checked as
	// they are read. Blob entries are collected and their files checked
	// outside the transaction.
	segSize := make(map[uint64]int64)
	var ents []ent
	var bad []victim
	if !s.view(func(tx *bolt.Tx) error {
		r := new(record)
		return tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			if decodeShadow(r, v) != nil {
				return nil
			}
			if r.seg == 0 {
				ents = append(ents, ent{victim{key: r.key, id: r.id}, r.size})
				return nil
			}
			size, ok := segSize[r.seg]
			if !ok {
				size = -1
				if fi, err := os.Stat(s.segmentPath(r.seg)); err == nil {
					size = fi.Size()
				}
				segSize[r.seg] = size
			}
			if r.off+r.size > size {
				bad = append(bad, victim{key: r.key, id: r.id, seg: r.seg})
			}
			return nil
		})
	}) {
		return false
	}
	for i, e := range ents {
		if i%1024 == 0 && s.stopping() {
			return false
		}
		fi, err := os.Stat(s.blobPath(e.id))
		if err != nil || fi.Size() != e.size {
			bad = append(bad, e.victim)
		}
	}
	ents = nil
	for len(bad) > 0 {
		n := min(len(bad), evictBatch)
		if s.begin() != nil {
			return false
		}
		removed, err := s.removeEntries(bad[:n])
		s.end()
		if err != nil {
			s.log.Error("storage: recovery: dropping entries", "err", err)
			return false
		}
		s.recoveryDropped.Add(int64(removed))
		bad = bad[n:]
	}
	return true
}

// deleteOrphanSegments deletes the files under segments/ that are not
// segments of the store: those of an earlier run that no entry named at
// Open (the shadow index knows every segment an entry names), and names
// that are not segment ids. This run's segments have ids at or above
// idBase<<32 and are never touched.
func (s *Store) deleteOrphanSegments() {
	for _, f := range s.segmentFiles() {
		if f.ok {
			if f.id >= s.idBase<<32 {
				continue
			}
			s.mu.Lock()
			_, known := s.lru.segs[f.id]
			s.mu.Unlock()
			if known {
				continue
			}
		}
		if err := os.Remove(f.path); err == nil {
			s.recoveryOrphans.Add(1)
		}
	}
}

// blobFile is a file found under blobs/ by listBlobFiles.
type blobFile struct {
	path string
	id   uint64
	ok   bool // name parsed as a blob id at its own path
}

// deleteOrphanBlobs is recovery step 2: it deletes the files under blobs/
// that no entry names (listing the files first, then reading the referenced
// ids) and that are not fresh. It reports whether recovery may go on.
func (s *Store) deleteOrphanBlobs() bool {
	s.deleteOrphanSegments()
	files, ok := s.listBlobFiles()
	if !ok {
		return false
	}
	refs := make(map[uint64]struct{})
	if !s.view(func(tx *bolt.Tx) error {
		r := new(record)
		return tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			if decodeShadow(r, v) == nil && r.seg == 0 {
				refs[r.id] = struct{}{}
			}
			return nil
		})
	}) {
		return false
	}
	for i, f := range files {
		if i%1024 == 0 && s.stopping() {
			return false
		}
		if f.ok {
			if _, ok := refs[f.id]; ok {
				continue
			}
			s.mu.Lock()
			_, fresh := s.fresh[f.id]
			s.mu.Unlock()
			if fresh {
				continue
			}
		}
		if err := os.Remove(f.path); err == nil {
			s.recoveryOrphans.Add(1)
		}
	}
	return true
}

// listBlobFiles lists every file in the three levels of blobs/ (a file at
// the first two levels is listed as not a blob). It reports false if Close
// stopped it.
func (s *Store) listBlobFiles() ([]blobFile, bool) {
	var files []blobFile
	blobs := filepath.Join(s.dir, "blobs")
	l1, _ := os.ReadDir(blobs)
	for _, d1 := range l1 {
		p1 := filepath.Join(blobs, d1.Name())
		if !d1.IsDir() {
			files = append(files, blobFile{path: p1})
			continue
		}
		l2, _ := os.ReadDir(p1)
		for _, d2 := range l2 {
			p2 := filepath.Join(p1, d2.Name())
			if !d2.IsDir() {
				files = append(files, blobFile{path: p2})
				continue
			}
			if s.stopping() {
				return nil, false
			}
			l3, _ := os.ReadDir(p2)
			for _, f := range l3 {
				if f.IsDir() {
					continue
				}
				id, err := strconv.ParseUint(f.Name(), 16, 64)
				ok := err == nil && len(f.Name()) == 16 && filepath.Join(blobs, s.blobRel(id)) == filepath.Join(p2, f.Name())
				files = append(files, blobFile{filepath.Join(p2, f.Name()), id, ok})
			}
		}
	}
	return files, true
}

// deleteDanglingTags is recovery step 3: it deletes the tag rows whose key
// is gone or no longer carries the tag (left by records that were
// undecodable when dropped). It reports false only if it could not read the
// index; a failed delete is logged.
func (s *Store) deleteDanglingTags() bool {
	var dangling [][]byte
	if !s.view(func(tx *bolt.Tx) error {
		objs := tx.Bucket(bucketObjects)
		return tx.Bucket(bucketTags).ForEach(func(k, _ []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 || !recordHasTag(objs.Get(k[i+1:]), string(k[:i])) {
				dangling = append(dangling, append([]byte(nil), k...))
			}
			return nil
		})
	}) {
		return false
	}
	if len(dangling) > 0 && s.begin() == nil {
		err := s.db.Update(func(tx *bolt.Tx) error {
			tags, objs := tx.Bucket(bucketTags), tx.Bucket(bucketObjects)
			for _, k := range dangling {
				i := bytes.IndexByte(k, 0)
				if i < 0 || !recordHasTag(objs.Get(k[i+1:]), string(k[:i])) {
					if err := tags.Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		})
		s.end()
		if err != nil {
			s.log.Error("storage: recovery: removing dangling tag rows", "err", err)
		}
	}
	return true
}

func recordHasTag(v []byte, tag string) bool {
	if v == nil {
		return false
	}
	r, err := decodeRecord(v)
	if err != nil {
		return false
	}
	for _, t := range r.tags {
		if t == tag {
			return true
		}
	}
	return false
}

// view runs fn in a read transaction if the store is open; it reports
// whether fn ran without error.
func (s *Store) view(fn func(*bolt.Tx) error) bool {
	if s.begin() != nil {
		return false
	}
	defer s.end()
	if err := s.db.View(fn); err != nil {
		s.log.Error("storage: recovery: reading index", "err", err)
		return false
	}
	return true
}

// flushLoop writes batched access times every AccessFlushInterval.
func (s *Store) flushLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.opts.AccessFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.FlushAccess(); err != nil && err != ErrClosed {
				s.log.Error("storage: flushing access times", "err", err)
			}
		}
	}
}

// FlushAccess writes the access times recorded by Get since the last flush
// to the index in one transaction. The background flusher and Close call it;
// it is exported for tests and for callers that want a flush point.
func (s *Store) FlushAccess() error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.flushAccess()
}

func (s *Store) flushAccess() error {
	type acc struct {
		key   string
		id    uint64
		atime int64
	}
	s.mu.Lock()
	batch := make([]acc, 0, len(s.lru.dirty))
	for _, e := range s.lru.dirty {
		if e.dirty && s.lru.m[e.key] == e {
			batch = append(batch, acc{e.key, e.id, e.atime})
		}
		e.dirty = false
	}
	s.lru.dirty = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		objs := tx.Bucket(bucketObjects)
		var buf []byte
		for _, a := range batch {
			v := objs.Get([]byte(a.key))
			if v == nil {
				continue
			}
			r, err := decodeRecord(v)
			if err != nil || r.id != a.id {
				continue
			}
			r.atime = nanosToTime(a.atime)
			buf = encodeRecord(buf[:0], r)
			if err := objs.Put([]byte(a.key), bytes.Clone(buf)); err != nil {
				return err
			}
		}
		return nil
	})
}
