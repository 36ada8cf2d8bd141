package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// packing is a small store that packs: 64 KiB segments, bodies up to
// 16 KiB packed, 1 MiB budget (16 segments).
func packing(dir string) storage.Options {
	return storage.Options{Dir: dir, Fsync: storage.FsyncNever, MaxBytes: 1 << 20, SegmentBytes: 64 << 10}
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "segments", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Small bodies share segment files; larger ones keep a file each.
func TestPackedLayout(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, packing(dir))
	for i := range 20 {
		put(t, s, fmt.Sprint("small", i), body(5000, uint64(i)))
	}
	put(t, s, "large", body(40_000, 7))
	if n := len(segmentFiles(t, dir)); n != 2 {
		t.Errorf("20 bodies of 5000 bytes in %d segments of 64 KiB, want 2", n)
	}
	if n := blobDirs(t, dir); n != 1 {
		t.Errorf("%d blob directories, want 1 (the large body)", n)
	}
	for i := range 20 {
		mustGet(t, s, fmt.Sprint("small", i), body(5000, uint64(i)))
	}
	mustGet(t, s, "large", body(40_000, 7))
	if st := s.Stats(); st.Segments != 2 || st.Objects != 21 || st.DeadBytes != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// A body written in pieces stays in memory until it outgrows the packing
// threshold, then spills to a file; readers following the write see every
// byte either way, and Abort leaves nothing behind.
func TestPackedWriterSpills(t *testing.T) {
	for _, n := range []int{0, 100, 16 << 10, 16<<10 + 1, 50_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, packing(dir))
			b := body(n, uint64(n))
			w, err := s.Create("k")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for off := 0; off < n; off += 3000 {
				end := min(off+3000, n)
				if _, err := w.Write(b[off:end]); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, end)
				if m, err := w.ReadAt(got, 0); m != end || err != nil || !bytes.Equal(got, b[:end]) {
					t.Fatalf("ReadAt after %d bytes: %d, %v", end, m, err)
				}
				if m, err := w.ReadAt(make([]byte, 10), int64(end)); m != 0 || err != io.EOF {
					t.Fatalf("ReadAt past the end: %d, %v", m, err)
				}
			}
			if err := w.Commit(storage.Meta{Size: int64(n)}); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			if m, err := w.ReadAt(got, 0); m != n || (err != nil && err != io.EOF) || !bytes.Equal(got, b) {
				t.Fatalf("ReadAt after Commit: %d, %v", m, err)
			}
			mustGet(t, s, "k", b)
			o, err := s.Get("k")
			if err != nil {
				t.Fatal(err)
			}
			if want := n <= 16<<10; o.Packed() != want {
				t.Errorf("packed = %v, want %v", o.Packed(), want)
			}
			o.Close()

			w2, _ := s.Create("aborted")
			w2.Write(b)
			w2.Abort()
			w2.Close()
			wantNotFound(t, s, "aborted")
		})
	}
}

// A reader of a packed body keeps reading it after the key is purged and
// its segment deleted, and after a newer version is packed elsewhere.
func TestPackedReaderIsolation(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, packing(dir))
	v1 := body(9000, 1)
	put(t, s, "k", v1)
	o, err := s.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// Fill the segment so it is sealed, then delete everything in it.
	for i := range 8 {
		put(t, s, fmt.Sprint("f", i), body(9000, uint64(10+i)))
	}
	put(t, s, "k", body(9000, 2))
	for i := range 8 {
		if err := s.Delete(fmt.Sprint("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.SegmentsDeleted == 0 {
		t.Fatalf("the first segment was not deleted: %+v", st)
	}
	got, err := io.ReadAll(o.NewReader(0, -1))
	if err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("old reader: %d bytes, %v", len(got), err)
	}
	mustGet(t, s, "k", body(9000, 2))
}

// Eviction and overwrites leave dead bytes in segments; compaction moves
// the live bodies on and deletes the segments, so live + dead bytes stay
// within MaxBytes, and every body read back is the one last written.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, packing(dir))
	rng := rand.New(rand.NewPCG(1, 2))
	latest := map[string]uint64{}
	for i := range 3000 {
		k := fmt.Sprint("k", rng.IntN(400))
		seed := uint64(i)
		put(t, s, k, body(1000+rng.IntN(12_000), seed))
		latest[k] = seed
		if i%7 == 0 {
			d := fmt.Sprint("k", rng.IntN(400))
			if err := s.Delete(d); err != nil {
				t.Fatal(err)
			}
			delete(latest, d)
		}
		if st := s.Stats(); st.Bytes+st.DeadBytes > 1<<20 {
			t.Fatalf("after %d puts: live %d + dead %d > budget", i, st.Bytes, st.DeadBytes)
		}
	}
	st := s.Stats()
	if st.Compactions == 0 || st.Relocated == 0 || st.Evictions == 0 {
		t.Errorf("stats = %+v, want compactions, relocations and evictions", st)
	}
	var onDisk int64
	for _, p := range segmentFiles(t, dir) {
		fi, _ := os.Stat(p)
		onDisk += fi.Size()
	}
	if onDisk > 1<<20+64<<10 {
		t.Errorf("segment files hold %d bytes, budget 1 MiB", onDisk)
	}
	found := 0
	for k, seed := range latest {
		got, err := get(t, s, k)
		if errors.Is(err, storage.ErrNotFound) {
			continue // evicted
		}
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		found++
		if len(got) < 1000 || !bytes.Equal(got, body(len(got), seed)) {
			t.Fatalf("%s: not the last version written", k)
		}
	}
	if found == 0 {
		t.Error("everything was evicted")
	}
	t.Logf("%+v; %d of %d keys still stored, %d bytes in segment files", st, found, len(latest), onDisk)
}

// Puts, gets, deletes and overwrites racing with compaction and eviction
// never yield a wrong body (run with -race).
func TestPackedConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, packing(dir))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 600 {
				k := fmt.Sprint("k", rng.IntN(150))
				n := 500 + rng.IntN(15_000)
				switch rng.IntN(4) {
				case 0, 1:
					// The body encodes its key and length, so any body
					// read back can be checked.
					put(t, s, k, keyed(k, n))
				case 2:
					got, err := get(t, s, k)
					if err == nil && !bytes.Equal(got, keyed(k, len(got))) {
						t.Errorf("%s: wrong body", k)
					} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("%s: %v", k, err)
					}
				case 3:
					s.Delete(k)
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Compactions == 0 {
		t.Logf("no compaction happened: %+v", st)
	}
}

func keyed(k string, n int) []byte {
	b := bytes.Repeat([]byte(k+"/"), n/len(k)+2)
	return b[:n]
}

// After a crash or damage: entries whose segment is missing, or ends before
// their body, are dropped at Open's recovery; the bodies before the cut
// are kept; segment files no entry names are deleted.
func TestPackedRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(packing(dir))
	if err != nil {
		t.Fatal(err)
	}
	// 10 bodies of 10,000 bytes: 6 in the first segment, 4 in the second.
	for i := range 10 {
		put(t, s, fmt.Sprint("k", i), body(10_000, uint64(i)), "tag")
	}
	first, second := storage.BlobPath(s, "k0"), storage.BlobPath(s, "k9")
	if first == second || storage.BlobPath(s, "k5") != first {
		t.Fatalf("unexpected packing: %s %s %s", first, storage.BlobPath(s, "k5"), second)
	}
	s.Close()
	os.Remove(second)
	os.Truncate(first, 45_000) // cuts k4 (40,000–50,000) and k5
	orphan := filepath.Join(dir, "segments", "0000000100000001")
	os.WriteFile(orphan, []byte("orphan"), 0o644)

	s = openStore(t, packing(dir))
	s.WaitRecovery()
	st := s.Stats()
	if st.RecoveryDroppedEntries != 6 || st.RecoveryDeletedOrphans != 1 || st.Objects != 4 || st.Bytes != 40_000 {
		t.Errorf("stats = %+v", st)
	}
	for i := range 10 {
		if i < 4 {
			mustGet(t, s, fmt.Sprint("k", i), body(10_000, uint64(i)))
		} else {
			wantNotFound(t, s, fmt.Sprint("k", i))
		}
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan segment still there: %v", err)
	}
	if got := collect(func(f func(string) bool) { s.KeysByTag("tag", f) }); len(got) != 4 {
		t.Errorf("tag rows after recovery: %q", got)
	}
}

// A flipped byte in a packed body fails its checksum: the entry is
// dropped and reads as ErrCorrupt; its neighbours are unharmed.
func TestPackedCorruption(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, packing(dir))
	for i := range 3 {
		put(t, s, fmt.Sprint("k", i), body(8000, uint64(i)))
	}
	flipByte(t, storage.BlobPath(s, "k1"), storage.BodyOffset(s, "k1")+77)
	if _, err := get(t, s, "k1"); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("damaged body: %v, want ErrCorrupt", err)
	}
	wantNotFound(t, s, "k1")
	mustGet(t, s, "k0", body(8000, 0))
	mustGet(t, s, "k2", body(8000, 2))
	if st := s.Stats(); st.ChecksumFailures != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Packed bodies and their segments survive a restart, and the restarted
// store appends to a new segment, never into an earlier run's.
func TestPackedRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(packing(dir))
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "a", body(3000, 1))
	s.Close()
	s = openStore(t, packing(dir))
	put(t, s, "b", body(3000, 2))
	mustGet(t, s, "a", body(3000, 1))
	mustGet(t, s, "b", body(3000, 2))
	if storage.BlobPath(s, "a") == storage.BlobPath(s, "b") {
		t.Error("a restarted store appended to an earlier run's segment")
	}
	// Overwriting the last body of the old segment deletes it.
	put(t, s, "a", body(3000, 3))
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Errorf("%d segment files, want 1", n)
	}
}

// With LoadWait < 0 Open returns before the in-memory index is loaded:
// gets, overwrites, deletes and meta updates made while it loads are
// served from the index and win over what the load read, and the load
// brings back nothing that was removed meanwhile.
func TestBackgroundLoad(t *testing.T) {
	dir := t.TempDir()
	const n = 30_000
	key := func(i int) string { return fmt.Sprintf("https://example.com/k%06d", i) }
	storage.BulkLoadPacked(t, dir, n, 100, 64<<10, 50, key)
	opts := packing(dir)
	opts.LoadWait = -1
	opts.MaxBytes = 1 << 30
	s := openStore(t, opts)
	old := bytes.Repeat([]byte("b"), 100)
	loadedEarly := s.Stats().Loaded
	// MayHave answers from the index file while the load runs.
	if !s.MayHave(key(7)) || s.MayHave("https://example.com/absent") {
		t.Errorf("MayHave while loading (loaded %v): stored %v, absent %v", s.Stats().Loaded, s.MayHave(key(7)), s.MayHave("https://example.com/absent"))
	}
	for i := 0; i < n; i += 1000 {
		switch i / 1000 % 4 {
		case 0:
			mustGet(t, s, key(i), old)
		case 1:
			put(t, s, key(i), keyed(key(i), 700))
		case 2:
			if err := s.Delete(key(i)); err != nil {
				t.Fatal(err)
			}
		case 3:
			if err := s.UpdateMeta(key(i), []byte("new header"), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.WaitRecovery()
	st := s.Stats()
	deleted := 0
	for i := 0; i < n; i += 1000 {
		if i/1000%4 == 2 {
			deleted++
		}
	}
	if st.Objects != int64(n-deleted) || !st.Loaded {
		t.Errorf("objects = %d, want %d; %+v", st.Objects, n-deleted, st)
	}
	var want int64
	for i := range n {
		switch {
		case i%1000 != 0 || i/1000%4 == 0 || i/1000%4 == 3:
			want += 100
		case i/1000%4 == 1:
			want += 700
		}
	}
	if st.Bytes != want {
		t.Errorf("bytes = %d, want %d", st.Bytes, want)
	}
	for i := 0; i < n; i += 1000 {
		switch i / 1000 % 4 {
		case 1:
			mustGet(t, s, key(i), keyed(key(i), 700))
		case 2:
			wantNotFound(t, s, key(i))
		case 3:
			o, err := s.Get(key(i))
			if err != nil {
				t.Fatal(err)
			}
			if string(o.Meta.Header) != "new header" {
				t.Errorf("%s: header %q", key(i), o.Meta.Header)
			}
			o.Close()
		}
	}
	t.Logf("loaded before the first get: %v", loadedEarly)
}

// A marker left by a run that found the index unreadable while loading it
// makes the next Open move the index aside.
func TestUnreadableMarker(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(packing(dir))
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", body(100, 1))
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "index.db.unreadable"), []byte("test"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, packing(dir))
	s.WaitRecovery()
	if st := s.Stats(); !st.MovedAsideIndex || st.Objects != 0 {
		t.Errorf("stats = %+v", st)
	}
	wantNotFound(t, s, "k")
	if _, err := os.Stat(filepath.Join(dir, "index.db.unreadable")); !os.IsNotExist(err) {
		t.Errorf("marker still there: %v", err)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "index.db.corrupt-*"))
	for _, a := range aside {
		os.Remove(a)
	}
	if len(aside) != 1 {
		t.Errorf("moved-aside files: %q", aside)
	}
}

// Two readers that find the same bad block drop the entry once and count
// one failure (a request racing the warm start counted two).
func TestCorruptionCountedOnce(t *testing.T) {
	for _, opts := range []storage.Options{packing(""), blobsOnly("")} {
		s := openStore(t, opts)
		put(t, s, "k", body(8000, 1))
		flipByte(t, storage.BlobPath(s, "k"), storage.BodyOffset(s, "k")+10)
		a, err := s.Get("k")
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Get("k")
		if err != nil {
			t.Fatal(err)
		}
		if a.Verify() == nil || b.Verify() == nil {
			t.Fatal("damage not detected")
		}
		a.Close()
		b.Close()
		if st := s.Stats(); st.ChecksumFailures != 1 {
			t.Errorf("packed=%v: %d checksum failures, want 1", opts.PackBelow >= 0, st.ChecksumFailures)
		}
	}
}

// WriteShared keeps a small body by reference and never writes into it.
func TestWriteShared(t *testing.T) {
	s := openStore(t, packing(""))
	b := body(5000, 3)
	orig := bytes.Clone(b)
	w, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteShared(b); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("tail")); err != nil { // appends to a copy
		t.Fatal(err)
	}
	if err := w.Commit(storage.Meta{Size: 5004}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if !bytes.Equal(b, orig) {
		t.Fatal("WriteShared wrote into the caller's bytes")
	}
	mustGet(t, s, "k", append(orig, "tail"...))
}
