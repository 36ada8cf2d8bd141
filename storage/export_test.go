package storage

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CheckConsistency asserts the on-disk invariants of a closed store in dir:
// every index entry decodes and its blob exists with the recorded size; no
// blob file lacks an entry; tag rows and record tags agree both ways; tmp/ is
// empty.
func CheckConsistency(t testing.TB, dir string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o644, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("consistency: open index: %v", err)
		return
	}
	defer db.Close()
	ids := map[string]string{}         // blob or segment path → (a) key
	regions := map[string][][3]int64{} // segment path → bodies [off, end)
	tagRows := map[string]bool{}
	wantRows := map[string]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		layout := &Store{layout: layoutSpread}
		if l := tx.Bucket(bucketMeta).Get(keyLayout); len(l) == 1 {
			layout.layout = l[0]
		}
		if err := tx.Bucket(bucketObjects).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil {
				t.Errorf("consistency: %q: %v", k, err)
				return nil
			}
			if r.key != string(k) {
				t.Errorf("consistency: record key %q under %q", r.key, k)
			}
			if r.seg != 0 {
				p := filepath.Join(dir, "segments", fmt.Sprintf("%016x", r.seg))
				fi, err := os.Stat(p)
				switch {
				case err != nil:
					t.Errorf("consistency: %q: segment: %v", k, err)
				case fi.Size() < r.off+r.size:
					t.Errorf("consistency: %q: segment %s ends at %d, body at %d", k, p, fi.Size(), r.off+r.size)
				}
				ids[p] = string(k)
				if r.size > 0 {
					regions[p] = append(regions[p], [3]int64{r.off, r.off + r.size})
				}
			} else {
				p := filepath.Join(dir, "blobs", layout.blobRel(r.id))
				fi, err := os.Stat(p)
				switch {
				case err != nil:
					t.Errorf("consistency: %q: blob: %v", k, err)
				case fi.Size() != r.size:
					t.Errorf("consistency: %q: blob size %d, record %d", k, fi.Size(), r.size)
				}
				if other, dup := ids[p]; dup {
					t.Errorf("consistency: %q and %q share blob %s", k, other, p)
				}
				ids[p] = string(k)
			}
			for _, tag := range r.tags {
				wantRows[string(tagRow(tag, r.key))] = true
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketTags).ForEach(func(k, _ []byte) error {
			tagRows[string(k)] = true
			return nil
		})
	})
	if err != nil {
		t.Errorf("consistency: %v", err)
	}
	for r := range tagRows {
		if !wantRows[r] {
			t.Errorf("consistency: stale tag row %q", r)
		}
	}
	for r := range wantRows {
		if !tagRows[r] {
			t.Errorf("consistency: missing tag row %q", r)
		}
	}
	for p, rs := range regions {
		slices.SortFunc(rs, func(a, b [3]int64) int { return cmp.Compare(a[0], b[0]) })
		for i := 1; i < len(rs); i++ {
			if rs[i][0] < rs[i-1][1] {
				t.Errorf("consistency: segment %s: bodies [%d,%d) and [%d,%d) overlap", p, rs[i-1][0], rs[i-1][1], rs[i][0], rs[i][1])
			}
		}
	}
	filepath.WalkDir(filepath.Join(dir, "segments"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, ok := ids[p]; !ok {
				t.Errorf("consistency: segment %s holds no indexed body", p)
			}
		}
		return nil
	})
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if _, ok := ids[p]; !ok {
				t.Errorf("consistency: orphan blob %s", p)
			}
		}
		return nil
	})
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(ents) > 0 {
		t.Errorf("consistency: tmp/ not empty: %v %v", ents, err)
	}
}

// BlobPath returns where the blob of key's current version lives (whitebox),
// or for a packed body its segment file.
func BlobPath(s *Store, key string) string {
	r, err := s.lookup(key)
	if err != nil {
		return ""
	}
	if r.seg != 0 {
		return s.segmentPath(r.seg)
	}
	return s.blobPath(r.id)
}

// BodyOffset returns where key's body starts in the file BlobPath names.
func BodyOffset(s *Store, key string) int64 {
	r, err := s.lookup(key)
	if err != nil {
		return -1
	}
	return r.off
}

// BulkLoad writes n index records of empty objects (and their empty blob
// files) straight into a closed store's directory, for memory benchmarks
// where n real commits would be too slow.
func BulkLoad(tb testing.TB, dir string, n int, keyf func(i int) string) {
	tb.Helper()
	s, err := Open(Options{Dir: dir, Fsync: FsyncNever})
	if err != nil {
		tb.Fatal(err)
	}
	s.WaitRecovery()
	now := time.Now()
	err = s.db.Update(func(tx *bolt.Tx) error {
		objs := tx.Bucket(bucketObjects)
		for i := range n {
			id := s.idBase<<32 | s.idSeq.Add(1)
			r := &record{key: keyf(i), header: bytes.Repeat([]byte("h"), 200), id: id, blockSize: BlockSize,
				stored: now, expires: now.Add(time.Hour), atime: now.Add(time.Duration(i))}
			if err := objs.Put([]byte(r.key), encodeRecord(nil, r)); err != nil {
				return err
			}
			p := s.blobPath(id)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BulkLoadPacked writes n index records of packed bodies of size bytes
// each (with their segment files, segBytes each, filled with the bodies)
// straight into a closed store's directory, for recovery benchmarks where n
// real commits would be too slow. Keys are keyf(i); headers are hdr bytes.
func BulkLoadPacked(tb testing.TB, dir string, n, size, segBytes, hdr int, keyf func(i int) string) {
	tb.Helper()
	s, err := Open(Options{Dir: dir, Fsync: FsyncNever})
	if err != nil {
		tb.Fatal(err)
	}
	s.WaitRecovery()
	now := time.Now()
	b := bytes.Repeat([]byte("b"), size)
	crc := crc32.Checksum(b, castagnoli)
	header := bytes.Repeat([]byte("h"), hdr)
	perSeg := segBytes / size
	var seg *os.File
	var segID uint64
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err = s.db.Update(func(tx *bolt.Tx) error {
			objs := tx.Bucket(bucketObjects)
			for i := start; i < min(start+batch, n); i++ {
				if i%perSeg == 0 {
					if seg != nil {
						seg.Close()
					}
					segID = s.idBase<<32 | s.idSeq.Add(1)
					if seg, err = os.Create(s.segmentPath(segID)); err != nil {
						return err
					}
					if err := seg.Truncate(int64(perSeg * size)); err != nil {
						return err
					}
				}
				off := int64(i%perSeg) * int64(size)
				if _, err := seg.WriteAt(b, off); err != nil {
					return err
				}
				r := &record{key: keyf(i), header: header, size: int64(size), id: s.idBase<<32 | s.idSeq.Add(1),
					seg: segID, off: off, blockSize: BlockSize, crcs: []uint32{crc},
					stored: now, expires: now.Add(time.Hour), atime: now.Add(time.Duration(i))}
				if err := objs.Put([]byte(r.key), encodeRecord(nil, r)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if seg != nil {
		seg.Close()
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

// ForgetFreelist leaves a closed store's index as a crash would: without
// the free page list a clean close writes, so the next Open scans it.
func ForgetFreelist(tb testing.TB, dir string) {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o644, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyClosed) }); err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// SetEvictedHook makes f run whenever an evictor, still holding the
// eviction lock, has found the store within budget; restore undoes it.
// Not for parallel tests.
func SetEvictedHook(f func()) (restore func()) {
	evictedHook = f
	return func() { evictedHook = nil }
}
