package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// clock is an injectable, manually advanced time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openStore opens a store (in a fresh temp dir unless opts.Dir is set) and
// registers a cleanup that waits for recovery, closes it and checks the
// on-disk invariants.
func openStore(t testing.TB, opts storage.Options) *storage.Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.WaitRecovery()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		storage.CheckConsistency(t, opts.Dir)
	})
	return s
}

func body(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t testing.TB, s *storage.Store, key string, b []byte, tags ...string) {
	t.Helper()
	putMeta(t, s, storage.Meta{Key: key, Header: []byte("hdr:" + key), Size: int64(len(b)), Tags: tags}, b)
}

func putMeta(t testing.TB, s *storage.Store, m storage.Meta, b []byte) {
	t.Helper()
	w, err := s.Create(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(m); err != nil {
		t.Fatal(err)
	}
}

// get returns the verified body of key, or the error.
func get(t testing.TB, s *storage.Store, key string) ([]byte, error) {
	t.Helper()
	o, err := s.Get(key)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	if err := o.Verify(); err != nil {
		return nil, err
	}
	return io.ReadAll(o.NewReader(0, -1))
}

func mustGet(t testing.TB, s *storage.Store, key string, want []byte) {
	t.Helper()
	got, err := get(t, s, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %q: %d bytes, want %d (equal=%v)", key, len(got), len(want), bytes.Equal(got, want))
	}
}

func wantNotFound(t testing.TB, s *storage.Store, key string) {
	t.Helper()
	if _, err := s.Get(key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get %q: err = %v, want ErrNotFound", key, err)
	}
}

func collect(iter func(func(string) bool)) []string {
	var out []string
	iter(func(k string) bool { out = append(out, k); return true })
	return out
}

func fast(dir string) storage.Options { return storage.Options{Dir: dir, Fsync: storage.FsyncNever} }

// blobsOnly is fast without packing: every body in a file of its own.
func blobsOnly(dir string) storage.Options {
	return storage.Options{Dir: dir, Fsync: storage.FsyncNever, PackBelow: -1}
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, storage.BlockSize - 1, storage.BlockSize, storage.BlockSize + 1, 3*storage.BlockSize + 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			clk := newClock()
			s := openStore(t, storage.Options{Now: clk.Now}) // default FsyncAlways
			b := body(n, uint64(n))
			exp := clk.Now().Add(time.Hour)
			putMeta(t, s, storage.Meta{Key: "k", Header: []byte{1, 2, 3}, Size: int64(n), Expires: exp, Tags: []string{"z", "a", "z"}}, b)
			mustGet(t, s, "k", b)
			o, err := s.Get("k")
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			m := o.Meta
			if m.Key != "k" || !bytes.Equal(m.Header, []byte{1, 2, 3}) || m.Size != int64(n) || o.Size() != int64(n) ||
				!m.Stored.Equal(clk.Now()) || !m.Expires.Equal(exp) || !slices.Equal(m.Tags, []string{"a", "z"}) {
				t.Errorf("meta = %+v", m)
			}
			// File gives the raw blob for sendfile; a packed body has none.
			if wantPacked := n <= storage.BlockSize; o.Packed() != wantPacked || wantPacked != (o.File() == nil) {
				t.Errorf("packed %v, File %v; want packed %v", o.Packed(), o.File(), wantPacked)
			}
			if !o.Packed() {
				raw, err := io.ReadAll(io.NewSectionReader(o.File(), 0, o.Size()))
				if err != nil || !bytes.Equal(raw, b) {
					t.Errorf("File: %d bytes, %v", len(raw), err)
				}
			}
			if st := s.Stats(); st.Objects != 1 || st.Bytes != int64(n) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestOverwriteAndTags(t *testing.T) {
	s := openStore(t, fast(""))
	v1, v2 := body(1000, 1), body(500, 2)
	put(t, s, "k", v1, "a", "b")
	put(t, s, "other", v1, "b")
	put(t, s, "k", v2, "b", "c")
	mustGet(t, s, "k", v2)
	for tag, want := range map[string][]string{"a": nil, "b": {"k", "other"}, "c": {"k"}, "": nil} {
		if got := collect(func(f func(string) bool) { s.KeysByTag(tag, f) }); !slices.Equal(got, want) {
			t.Errorf("KeysByTag(%q) = %q, want %q", tag, got, want)
		}
	}
	if st := s.Stats(); st.Objects != 2 || st.Bytes != 1500 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDelete(t *testing.T) {
	s := openStore(t, fast(""))
	put(t, s, "k", body(10, 1), "t")
	if err := s.Delete("k"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "k")
	if err := s.Delete("k"); err != nil {
		t.Errorf("delete missing: %v", err)
	}
	if got := collect(func(f func(string) bool) { s.KeysByTag("t", f) }); len(got) != 0 {
		t.Errorf("tag rows left: %q", got)
	}
	if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestKeys(t *testing.T) {
	s := openStore(t, fast(""))
	var want []string
	var wg sync.WaitGroup
	for i := range 1100 { // more than one scan chunk
		k := fmt.Sprintf("https://h/p/%04d", i)
		want = append(want, k)
		wg.Go(func() { put(t, s, k, []byte{byte(i)}, "all") })
	}
	wg.Wait()
	for _, k := range []string{"https://h/o", "https://h/p", "https://h/q/1", "https://i/"} {
		put(t, s, k, nil)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"https://h/p/", want},
		{"https://h/p/000", want[:10]},
		{"https://h/q", []string{"https://h/q/1"}},
		{"https://i/", []string{"https://i/"}},
		{"nope", nil},
	}
	for _, tt := range tests {
		if got := collect(func(f func(string) bool) { s.KeysWithPrefix(tt.prefix, f) }); !slices.Equal(got, tt.want) {
			t.Errorf("KeysWithPrefix(%q): %d keys, want %d", tt.prefix, len(got), len(tt.want))
		}
	}
	if got := collect(s.Keys); len(got) != 1104 || !slices.IsSorted(got) {
		t.Errorf("Keys: %d keys, sorted=%v", len(got), slices.IsSorted(got))
	}
	if got := collect(func(f func(string) bool) { s.KeysByTag("all", f) }); !slices.Equal(got, want) {
		t.Errorf("KeysByTag: %d keys", len(got))
	}
	n := 0
	s.Keys(func(string) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("early stop: %d calls", n)
	}
	// The callback may mutate the store (purge by prefix).
	s.KeysWithPrefix("https://h/p/", func(k string) bool {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
		return true
	})
	if got := collect(s.Keys); len(got) != 4 {
		t.Errorf("after purge: %q", got)
	}
}

func TestCommitSizeMismatch(t *testing.T) {
	s := openStore(t, fast(""))
	w, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("0123456789"))
	if err := w.Commit(storage.Meta{Size: 11}); !errors.Is(err, storage.ErrSizeMismatch) {
		t.Fatalf("Commit = %v, want ErrSizeMismatch", err)
	}
	wantNotFound(t, s, "k")
	if err := w.Commit(storage.Meta{Size: 10}); err == nil {
		t.Error("Commit after failed Commit succeeded")
	}
	// Size < 0 skips the check.
	w2, _ := s.Create("k")
	defer w2.Close()
	w2.Write([]byte("abc"))
	if err := w2.Commit(storage.Meta{Size: -1}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "k", []byte("abc"))
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, fast(dir))
	w, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body(100, 1))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := w.Commit(storage.Meta{Size: -1}); !errors.Is(err, storage.ErrAborted) {
		t.Errorf("Commit after Abort = %v", err)
	}
	if _, err := w.ReadAt(make([]byte, 1), 0); !errors.Is(err, storage.ErrAborted) {
		t.Errorf("ReadAt after Abort = %v", err)
	}
	w.Close()
	wantNotFound(t, s, "k")
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ = %v", ents)
	}
	// A committed writer: Abort is a no-op, so `defer w.Abort()` is safe.
	w, _ = s.Create("k")
	w.Write([]byte("x"))
	if err := w.Commit(storage.Meta{Size: 1}); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Close()
	mustGet(t, s, "k", []byte("x"))
}

func TestTmpCleanedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(fast(dir))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create("k")
	w.Write(body(100, 1))
	// Close aborts a writer left open.
	s.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ after Close = %v", ents)
	}
	if err := w.Commit(storage.Meta{Size: -1}); err == nil {
		t.Error("Commit after store Close succeeded")
	}
	// A crashed process leaves files in tmp/: Open deletes them.
	os.WriteFile(filepath.Join(dir, "tmp", "00000000000000aa"), []byte("partial"), 0o644)
	os.MkdirAll(filepath.Join(dir, "tmp", "junkdir"), 0o755)
	s = openStore(t, fast(dir))
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ after Open = %v", ents)
	}
	wantNotFound(t, s, "k")
}

func TestReadWhileWrite(t *testing.T) {
	s := openStore(t, fast(""))
	b := body(2*storage.BlockSize+1234, 7)
	w, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	done := false
	var wg sync.WaitGroup
	read := make([][]byte, 4)
	for r := range read {
		wg.Go(func() {
			buf := make([]byte, 10_000+r*777)
			var off int64
			for off < int64(len(b)) {
				n, err := w.ReadAt(buf, off)
				read[r] = append(read[r], buf[:n]...)
				off += int64(n)
				if err == io.EOF {
					mu.Lock()
					for !done && w.Written() <= off {
						cond.Wait()
					}
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for p := b; len(p) > 0; {
		n := min(len(p), 3000)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	}
	if err := w.Commit(storage.Meta{Size: int64(len(b))}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	done = true
	cond.Broadcast()
	mu.Unlock()
	wg.Wait()
	for r, got := range read {
		if !bytes.Equal(got, b) {
			t.Errorf("reader %d: %d bytes, want %d", r, len(got), len(b))
		}
	}
	// ReadAt keeps working after Commit (the blob was renamed) until Close.
	after := make([]byte, len(b)+10)
	if n, err := w.ReadAt(after, 0); n != len(b) || err != io.EOF || !bytes.Equal(after[:n], b) {
		t.Errorf("ReadAt after Commit: n=%d err=%v", n, err)
	}
	w.Close()
	if _, err := w.ReadAt(after, 0); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("ReadAt after Close = %v", err)
	}
	mustGet(t, s, "k", b)
}

func TestReaderIsolation(t *testing.T) {
	s := openStore(t, fast(""))
	v1, v2 := body(3*storage.BlockSize, 1), body(2*storage.BlockSize, 2)
	put(t, s, "k", v1)
	o, err := s.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	r := o.NewReader(0, -1)
	head := make([]byte, 100)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", v2)
	mustGet(t, s, "k", v2)
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(append(head, rest...), v1) {
		t.Fatalf("old reader: %d bytes, %v", 100+len(rest), err)
	}
	// Also across Delete.
	o2, _ := s.Get("k")
	defer o2.Close()
	s.Delete("k")
	if err := o2.Verify(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o2.NewReader(0, -1))
	if !bytes.Equal(got, v2) {
		t.Error("reader after Delete saw different bytes")
	}
}

func TestNewReaderRanges(t *testing.T) {
	s := openStore(t, fast(""))
	b := body(2*storage.BlockSize+100, 3)
	put(t, s, "k", b)
	o, _ := s.Get("k")
	defer o.Close()
	n := int64(len(b))
	bs := int64(storage.BlockSize)
	for _, tt := range []struct{ off, n, from, to int64 }{
		{0, -1, 0, n},
		{0, 0, 0, 0},
		{10, 20, 10, 30},
		{bs - 5, 10, bs - 5, bs + 5},
		{n - 1, 100, n - 1, n},
		{n, 10, n, n},
		{n + 5, 10, n, n},
		{-3, 5, 0, 5},
	} {
		got, err := io.ReadAll(o.NewReader(tt.off, tt.n))
		if err != nil || !bytes.Equal(got, b[tt.from:tt.to]) {
			t.Errorf("NewReader(%d, %d): %d bytes, %v", tt.off, tt.n, len(got), err)
		}
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s, err := storage.Open(storage.Options{Dir: dir, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		want[k] = body(i*10_000, uint64(i))
		put(t, s, k, want[k], fmt.Sprint("t", i%3))
	}
	st1 := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, storage.Options{Dir: dir, Now: clk.Now})
	s.WaitRecovery()
	for k, b := range want {
		mustGet(t, s, k, b)
	}
	if st := s.Stats(); st.Objects != st1.Objects || st.Bytes != st1.Bytes || st.RecoveryDroppedEntries != 0 || st.RecoveryDeletedOrphans != 0 || !st.RecoveryDone {
		t.Errorf("stats after restart = %+v, before %+v", st, st1)
	}
	if got := collect(func(f func(string) bool) { s.KeysByTag("t1", f) }); len(got) != 7 {
		t.Errorf("tag t1 after restart: %q", got)
	}
}

func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(blobsOnly(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"missing", "short", "ok1", "ok2"} {
		put(t, s, k, body(5000, 1), "tag")
	}
	missing, short := storage.BlobPath(s, "missing"), storage.BlobPath(s, "short")
	s.Close()
	os.Remove(missing)
	os.Truncate(short, 100)
	orphan := filepath.Join(dir, "blobs", "ef", "be", "00000000deadbeef")
	os.MkdirAll(filepath.Dir(orphan), 0o755)
	os.WriteFile(orphan, []byte("orphan"), 0o644)
	os.WriteFile(filepath.Join(dir, "tmp", "garbage"), []byte("garbage"), 0o644)

	s = openStore(t, blobsOnly(dir))
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not cleaned at Open: %v", ents)
	}
	s.WaitRecovery()
	st := s.Stats()
	if st.RecoveryDroppedEntries != 2 || st.RecoveryDeletedOrphans != 1 || !st.RecoveryDone || st.Objects != 2 || st.Bytes != 10_000 {
		t.Errorf("stats = %+v", st)
	}
	wantNotFound(t, s, "missing")
	wantNotFound(t, s, "short")
	mustGet(t, s, "ok1", body(5000, 1))
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan still there: %v", err)
	}
	if got := collect(func(f func(string) bool) { s.KeysByTag("tag", f) }); !slices.Equal(got, []string{"ok1", "ok2"}) {
		t.Errorf("tag rows after recovery: %q", got)
	}
}

// Commits racing with recovery must never be taken for orphans.
func TestRecoveryConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	s, _ := storage.Open(fast(dir))
	for i := range 50 {
		put(t, s, fmt.Sprint("old", i), []byte("x"))
	}
	s.Close()
	s = openStore(t, fast(dir))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { put(t, s, fmt.Sprint("new", i), body(100, uint64(i))) })
	}
	wg.Wait()
	s.WaitRecovery()
	for i := range 50 {
		mustGet(t, s, fmt.Sprint("new", i), body(100, uint64(i)))
	}
	if st := s.Stats(); st.Objects != 100 || st.RecoveryDeletedOrphans != 0 || st.RecoveryDroppedEntries != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestGetSizeMismatch(t *testing.T) {
	for _, damage := range []string{"truncate", "remove"} {
		t.Run(damage, func(t *testing.T) {
			s := openStore(t, blobsOnly(""))
			put(t, s, "k", body(1000, 1))
			p := storage.BlobPath(s, "k")
			if damage == "truncate" {
				os.Truncate(p, 10)
			} else {
				os.Remove(p)
			}
			wantNotFound(t, s, "k")
			if st := s.Stats(); st.SizeMismatches != 1 || st.Objects != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	bs := int64(storage.BlockSize)
	b := body(int(3*bs+100), 9)
	bad := bs + 5 // in block 1
	tests := []struct {
		name      string
		read      func(o *storage.Object) ([]byte, error)
		wantBytes int64 // bytes returned before ErrCorrupt
	}{
		{"Verify", func(o *storage.Object) ([]byte, error) { return nil, o.Verify() }, 0},
		{"ReaderFromStart", func(o *storage.Object) ([]byte, error) { return io.ReadAll(o.NewReader(0, -1)) }, bs},
		{"ReaderInsideBadBlock", func(o *storage.Object) ([]byte, error) { return io.ReadAll(o.NewReader(bs+10, 20)) }, 0},
		{"ReaderEndsInBadBlock", func(o *storage.Object) ([]byte, error) { return io.ReadAll(o.NewReader(bs-3, 10)) }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, fast(""))
			put(t, s, "k", b)
			flipByte(t, storage.BlobPath(s, "k"), bad)
			o, err := s.Get("k")
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			got, err := tt.read(o)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if int64(len(got)) != tt.wantBytes {
				t.Errorf("returned %d bytes before ErrCorrupt, want %d", len(got), tt.wantBytes)
			}
			wantNotFound(t, s, "k")
			if st := s.Stats(); st.ChecksumFailures != 1 || st.Objects != 0 || st.Bytes != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
	t.Run("UndamagedRange", func(t *testing.T) {
		s := openStore(t, fast(""))
		put(t, s, "k", b)
		flipByte(t, storage.BlobPath(s, "k"), bad)
		o, _ := s.Get("k")
		defer o.Close()
		got, err := io.ReadAll(o.NewReader(2*bs, 50))
		if err != nil || !bytes.Equal(got, b[2*bs:2*bs+50]) {
			t.Errorf("good block: %v", err)
		}
		// The entry is dropped only once the bad block is read.
		o.Verify()
	})
}

func TestCorruptIndex(t *testing.T) {
	for name, garbage := range map[string][]byte{
		"short":   []byte("hello, not a database"),
		"pages":   body(64<<10, 5),
		"zeroish": make([]byte, 16<<10),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := storage.Open(fast(dir))
			put(t, s, "k", body(100, 1))
			s.Close()
			if err := os.WriteFile(filepath.Join(dir, "index.db"), garbage, 0o644); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, fast(dir))
			s.WaitRecovery()
			st := s.Stats()
			if !st.MovedAsideIndex || st.Objects != 0 || st.RecoveryDeletedOrphans != 1 {
				t.Errorf("stats = %+v", st)
			}
			aside, _ := filepath.Glob(filepath.Join(dir, "index.db.corrupt-*"))
			if len(aside) != 1 {
				t.Fatalf("moved-aside files: %q", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, garbage) {
				t.Error("moved-aside file differs from the garbage")
			}
			wantNotFound(t, s, "k")
			put(t, s, "k", []byte("fresh"))
			mustGet(t, s, "k", []byte("fresh"))
			os.Remove(aside[0]) // keep CheckConsistency's view simple
		})
	}
}

// TestEvictionLowWater: a full store evicts past the excess, by whole
// objects within MaxBytes/256, so the next commits find room without an
// eviction transaction each (the write-behind of a full disk tier).
func TestEvictionLowWater(t *testing.T) {
	const maxBytes, size = 1 << 20, 1000 // slack 4096: four objects, not five
	clk := newClock()
	s, err := storage.Open(storage.Options{Dir: t.TempDir(), MaxBytes: maxBytes, PackBelow: -1, Now: clk.Now, Fsync: storage.FsyncNever, AccessFlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := maxBytes / size
	for i := range n {
		clk.Advance(time.Millisecond)
		put(t, s, fmt.Sprintf("k%04d", i), body(size, uint64(i)))
	}
	if st := s.Stats(); st.Evictions != 0 {
		t.Fatalf("evicted %d objects within the budget", st.Evictions)
	}
	put(t, s, "over", body(size, 1)) // 424 bytes over
	st := s.Stats()
	if st.Evictions != 4 || st.Bytes != int64(n+1-4)*size {
		t.Fatalf("one object over: evicted %d (%d bytes left), want 4: the excess and three more within the slack", st.Evictions, st.Bytes)
	}
	for i := range 3 { // the room the slack made
		put(t, s, fmt.Sprintf("more%d", i), body(size, 2))
	}
	if st := s.Stats(); st.Evictions != 4 {
		t.Errorf("commits into the freed room evicted %d more", st.Evictions-4)
	}
	for i := range 4 { // the coldest went
		wantNotFound(t, s, fmt.Sprintf("k%04d", i))
	}
	mustGet(t, s, fmt.Sprintf("k%04d", 4), body(size, 4))
}

// TestEvictionConcurrentWithinBudget: commits that find eviction running
// do not wait for it; the evictor looks again when it lets go, so once
// every commit has returned the store is within MaxBytes.
func TestEvictionConcurrentWithinBudget(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts storage.Options
	}{
		{"blobs", storage.Options{Fsync: storage.FsyncNever, MaxBytes: 256 << 10, PackBelow: -1}},
		{"packed", storage.Options{Fsync: storage.FsyncNever, MaxBytes: 1 << 20, SegmentBytes: 64 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Dir = t.TempDir()
			s := openStore(t, opts)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 150 {
						put(t, s, fmt.Sprintf("g%d-%d", g, i), body(1000+(g*977+i*131)%9000, uint64(i)))
					}
				})
			}
			wg.Wait()
			st := s.Stats()
			if st.Evictions == 0 {
				t.Fatalf("nothing evicted: %+v", st)
			}
			if st.Bytes+st.DeadBytes > opts.MaxBytes {
				t.Errorf("after the commits: %d stored + %d dead bytes, over the budget of %d", st.Bytes, st.DeadBytes, opts.MaxBytes)
			}
		})
	}
}

// TestEvictionCommitDuringEviction: a commit that pushes the store over
// budget while another commit's eviction is finishing does not wait for it
// and does not evict; the evictor sees its bytes when it looks again, and
// the store ends within budget.
func TestEvictionCommitDuringEviction(t *testing.T) {
	const maxBytes, size = 256 << 10, 1000
	s := openStore(t, storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever, MaxBytes: maxBytes, PackBelow: -1})
	n := maxBytes / size
	for i := range n {
		put(t, s, fmt.Sprint("k", i), body(size, uint64(i)))
	}
	holding, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer storage.SetEvictedHook(func() {
		once.Do(func() { close(holding); <-release }) // the first evictor, done, still holding the lock
	})()
	done := make(chan struct{})
	go func() { put(t, s, "first", body(size, 1)); close(done) }() // over: evicts, then holds
	<-holding
	evicted := s.Stats().Evictions
	for i := range 4 * (maxBytes / 256 / size) { // more than the slack made room for
		put(t, s, fmt.Sprint("during", i), body(size, 2)) // returns without waiting for the evictor
	}
	st := s.Stats()
	if st.Evictions != evicted || st.Bytes <= maxBytes {
		t.Fatalf("commits during the eviction: %d more evicted, %d bytes; want none evicted and over the %d budget", st.Evictions-evicted, st.Bytes, maxBytes)
	}
	close(release)
	<-done
	if st := s.Stats(); st.Bytes > maxBytes {
		t.Errorf("after the evictor let go: %d bytes, over the budget of %d: it did not look again", st.Bytes, maxBytes)
	}
}

func TestEvictionLRU(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := storage.Options{Dir: dir, MaxBytes: 3000, Now: clk.Now, Fsync: storage.FsyncNever, AccessFlushInterval: -1}
	s, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		clk.Advance(time.Second)
		put(t, s, k, body(1000, 1))
	}
	clk.Advance(time.Second)
	o, _ := s.Get("a") // a is now more recent than b and c
	o.Close()
	clk.Advance(time.Second)
	put(t, s, "d", body(1000, 2))
	if got := collect(s.Keys); !slices.Equal(got, []string{"a", "c", "d"}) {
		t.Errorf("after evicting one: %q", got)
	}
	if st := s.Stats(); st.Bytes > 3000 || st.Evictions != 1 {
		t.Errorf("stats = %+v", st)
	}
	if err := s.FlushAccess(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Access times survived the restart: c (t3) is now older than a (t4).
	s = openStore(t, opts)
	clk.Advance(time.Second)
	put(t, s, "e", body(1000, 3))
	if got := collect(s.Keys); !slices.Equal(got, []string{"a", "d", "e"}) {
		t.Errorf("after restart + evict: %q", got)
	}
	// A body that alone exceeds MaxBytes is refused.
	w, _ := s.Create("huge")
	defer w.Close()
	if _, err := w.Write(make([]byte, 3001)); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Write huge = %v, want ErrTooLarge", err)
	}
	w.Abort()
	// Evicting several at once keeps the budget.
	put(t, s, "big", body(2500, 4))
	if st := s.Stats(); st.Bytes > 3000 || st.Objects != 1 {
		t.Errorf("after big: %+v, keys %q", st, collect(s.Keys))
	}
}

func TestEvictionPrefersExpired(t *testing.T) {
	clk := newClock()
	s := openStore(t, storage.Options{MaxBytes: 3000, Now: clk.Now, Fsync: storage.FsyncNever})
	for _, k := range []string{"a", "b"} {
		clk.Advance(time.Second)
		put(t, s, k, body(1000, 1))
	}
	clk.Advance(time.Second)
	putMeta(t, s, storage.Meta{Key: "expired", Size: 1000, Expires: clk.Now().Add(time.Second)}, body(1000, 1))
	clk.Advance(time.Minute)
	put(t, s, "d", body(1000, 1))
	if got := collect(s.Keys); !slices.Equal(got, []string{"a", "b", "d"}) {
		t.Errorf("keys = %q, want the expired one evicted first", got)
	}
}

func TestConcurrentCommits(t *testing.T) {
	s := openStore(t, storage.Options{}) // FsyncAlways, exercises Batch
	var wg sync.WaitGroup
	bodies := map[string]bool{}
	for i := range 16 {
		b := body(1000+i, uint64(i))
		bodies[string(b)] = true
		wg.Go(func() { put(t, s, "same", b, fmt.Sprint("t", i)) })
		wg.Go(func() { put(t, s, fmt.Sprint("k", i), b) })
	}
	wg.Wait()
	got, err := get(t, s, "same")
	if err != nil || !bodies[string(got)] {
		t.Fatalf("same: %v", err)
	}
	if st := s.Stats(); st.Objects != 17 {
		t.Errorf("stats = %+v", st)
	}
	var tagged []string
	for i := range 16 {
		tagged = append(tagged, collect(func(f func(string) bool) { s.KeysByTag(fmt.Sprint("t", i), f) })...)
	}
	if !slices.Equal(tagged, []string{"same"}) {
		t.Errorf("tag rows of losing versions left: %q", tagged)
	}
}

func TestConcurrentMixed(t *testing.T) {
	clk := newClock()
	s := openStore(t, storage.Options{MaxBytes: 20_000, Now: clk.Now, Fsync: storage.FsyncNever})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				k := fmt.Sprint("k", (g*7+i)%13)
				switch i % 4 {
				case 0, 1:
					put(t, s, k, body(1000+i, uint64(i)))
				case 2:
					if o, err := s.Get(k); err == nil {
						if err := o.Verify(); err != nil {
							t.Error(err)
						}
						o.Close()
					}
				case 3:
					if i%8 == 3 {
						s.Delete(k)
					} else {
						s.FlushAccess()
					}
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Bytes > 20_000 {
		t.Errorf("stats = %+v", st)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, fast(dir))
	start := time.Now()
	_, err := storage.Open(storage.Options{Dir: dir, OpenTimeout: 200 * time.Millisecond})
	if !errors.Is(err, storage.ErrInUse) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
	put(t, s, "k", []byte("still fine"))
	s.Close()
	s2 := openStore(t, fast(dir))
	mustGet(t, s2, "k", []byte("still fine"))
}

func TestClosed(t *testing.T) {
	s := openStore(t, fast(""))
	put(t, s, "k", []byte("x"))
	o, _ := s.Get("k")
	defer o.Close()
	s.Close()
	if _, err := s.Get("k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get = %v", err)
	}
	if _, err := s.Create("k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Create = %v", err)
	}
	if err := s.Delete("k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Delete = %v", err)
	}
	if err := s.FlushAccess(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("FlushAccess = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	// An Object opened before Close stays readable.
	if got, err := io.ReadAll(o.NewReader(0, -1)); err != nil || string(got) != "x" {
		t.Errorf("object after Close: %q %v", got, err)
	}
}

func TestInvalidInput(t *testing.T) {
	s := openStore(t, fast(""))
	if _, err := s.Create(""); err == nil {
		t.Error("Create(\"\") succeeded")
	}
	w, _ := s.Create("k")
	defer w.Close()
	if err := w.Commit(storage.Meta{Size: 0, Tags: []string{"a\x00b"}}); err == nil {
		t.Error("tag with NUL accepted")
	}
	wantNotFound(t, s, "k")
	if _, err := storage.Open(storage.Options{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
}

// storage must stay free of HTTP and of dependencies beyond bbolt.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(path, "net/http"):
			t.Errorf("storage depends on %s", path)
		case std == "true", path == "github.com/edged-proxy/edged/storage":
		case strings.HasPrefix(path, "go.etcd.io/bbolt"), strings.HasPrefix(path, "golang.org/x/sys/"):
			// bbolt and its own dependency
		default:
			t.Errorf("unexpected dependency %s", path)
		}
	}
}

func TestDeleteKeysAndUpdateMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storage.CheckConsistency(t, dir) })
	defer s.Close()
	var keys []string
	for i := range 3000 {
		k := fmt.Sprintf("k%05d", i)
		keys = append(keys, k)
		w, err := s.Create(k)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(k))
		if err := w.Commit(storage.Meta{Header: []byte("h"), Size: -1, Tags: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	if err := s.UpdateMeta("k00001", []byte("new"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Get("k00001")
	if err != nil || string(obj.Meta.Header) != "new" {
		t.Fatalf("UpdateMeta: %v %q", err, obj.Meta.Header)
	}
	obj.Close()
	if err := s.UpdateMeta("missing", nil, time.Time{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UpdateMeta of a missing key: %v", err)
	}
	n, err := s.DeleteKeys(append(keys[:2500:2500], "missing"))
	if err != nil || n != 2500 {
		t.Fatalf("DeleteKeys: %d %v", n, err)
	}
	var left []string
	s.KeysByTag("t", func(k string) bool { left = append(left, k); return true })
	if len(left) != 500 || s.Stats().Objects != 500 {
		t.Errorf("%d tagged keys, %d objects left, want 500", len(left), s.Stats().Objects)
	}
}

// MayHave answers from the in-memory index: true for a stored key, false
// for one never stored or deleted (once the index is loaded).
func TestMayHave(t *testing.T) {
	s := openStore(t, storage.Options{Dir: t.TempDir(), Fsync: storage.FsyncNever})
	s.WaitLoaded()
	put(t, s, "k", body(100, 1))
	if !s.MayHave("k") || s.MayHave("absent") {
		t.Fatalf("MayHave: k %v, absent %v", s.MayHave("k"), s.MayHave("absent"))
	}
	if err := s.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if s.MayHave("k") {
		t.Error("MayHave is true for a deleted key")
	}
}
