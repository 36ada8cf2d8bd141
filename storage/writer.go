package storage

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writer states
const (
	wWriting = iota
	wCommitted
	wAborted
)

// Writer streams one new version of an object into tmp/. Nothing is visible
// to Get until Commit succeeds.
//
// Lifecycle: Create → Write... → exactly one of Commit or Abort ends writing;
// Close releases the file descriptor and must always be called (it aborts a
// writer that was neither committed nor aborted). Between them, ReadAt may be
// called from any number of goroutines concurrently with Write and Commit,
// which is how read-while-write readers follow a fill; it keeps working after
// Commit (the rename does not invalidate the descriptor) until Close. The
// cache calls Close when the last such reader is done.
//
// Write, Commit, Abort and Close must not be called concurrently with one
// another (except that Store.Close may abort a writer at any time).
type Writer struct {
	s   *Store
	key string
	id  uint64

	mu      sync.Mutex // serializes Write/Commit/Abort/Close
	state   int
	closed  bool
	crcs    []uint32
	blockN  int64  // bytes in the current (partial) block
	blockCR uint32 // running CRC of the current block
	written atomic.Int64
	aborted atomic.Bool // state == wAborted, readable without mu

	fmu sync.RWMutex // guards f and buf against Close while ReadAt uses them
	f   *os.File
	// buffered: the body is kept in buf, to be packed into a segment at
	// Commit, until it outgrows the store's PackBelow; then it is spilled
	// to a file in tmp/ like a large body's.
	buffered bool
	buf      []byte
	// pseg and poff: where Prepare wrote the buffered body (pseg pinned
	// until Commit or Abort takes it over); nil before.
	pseg *segment
	poff int64
}

// Create starts writing a new version of key in tmp/. The version gets a
// fresh blob id, so committing it never overwrites a blob a reader may have
// open.
func (s *Store) Create(key string) (*Writer, error) {
	if key == "" || len(key) > maxKeyLen {
		return nil, fmt.Errorf("storage: invalid key length %d", len(key))
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	w := &Writer{s: s, key: key, id: id, buffered: s.packBelow > 0}
	if !w.buffered {
		if w.f, err = w.createTmp(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.writers[w] = struct{}{}
	s.mu.Unlock()
	return w, nil
}

// Write appends p to the body, updating the block checksums. Once the body
// would exceed Options.MaxBytes it fails with ErrTooLarge.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stateErr(); err != nil {
		return 0, err
	}
	if w.pseg != nil {
		return 0, errors.New("storage: write after Prepare")
	}
	off := w.written.Load()
	if off+int64(len(p)) > w.s.opts.MaxBytes {
		return 0, ErrTooLarge
	}
	if w.buffered {
		if off+int64(len(p)) <= w.s.packBelow {
			w.fmu.Lock()
			w.buf = append(w.buf, p...)
			w.fmu.Unlock()
			w.sum(p)
			w.written.Store(off + int64(len(p)))
			return len(p), nil
		}
		if err := w.spill(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.WriteAt(p, off)
	w.sum(p[:n])
	w.written.Store(off + int64(n))
	if err != nil {
		return n, fmt.Errorf("storage: write: %w", err)
	}
	return n, nil
}

// WriteShared is Write for a caller that will not modify p until Close: a
// whole small body that will be packed is kept by reference, not copied
// (the cache's write-behind copies bodies it already holds in memory).
// Later writes append to a copy, never into p.
func (w *Writer) WriteShared(p []byte) (int, error) {
	w.mu.Lock()
	if w.buffered && w.written.Load() == 0 && w.state == wWriting && !w.closed && w.pseg == nil &&
		int64(len(p)) <= w.s.packBelow && int64(len(p)) <= w.s.opts.MaxBytes {
		w.fmu.Lock()
		w.buf = p[:len(p):len(p)]
		w.fmu.Unlock()
		w.sum(p)
		w.written.Store(int64(len(p)))
		w.mu.Unlock()
		return len(p), nil
	}
	w.mu.Unlock()
	return w.Write(p)
}

// createTmp creates the writer's file in tmp/.
func (w *Writer) createTmp() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(w.s.dir, "tmp", fmt.Sprintf("%016x", w.id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: create: %w", err)
	}
	return f, nil
}

// spill moves a buffered body that outgrew PackBelow to a file in tmp/.
func (w *Writer) spill() error {
	f, err := w.createTmp()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(w.buf, 0); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("storage: write: %w", err)
	}
	w.fmu.Lock()
	w.f, w.buffered, w.buf = f, false, nil
	w.fmu.Unlock()
	return nil
}

func (w *Writer) stateErr() error {
	switch w.state {
	case wCommitted:
		return errors.New("storage: writer already committed")
	case wAborted:
		return ErrAborted
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// sum feeds p into the per-block CRC32C computation.
func (w *Writer) sum(p []byte) {
	for len(p) > 0 {
		k := min(int64(len(p)), BlockSize-w.blockN)
		w.blockCR = crc32.Update(w.blockCR, castagnoli, p[:k])
		w.blockN += k
		p = p[k:]
		if w.blockN == BlockSize {
			w.crcs = append(w.crcs, w.blockCR)
			w.blockN, w.blockCR = 0, 0
		}
	}
}

// Written returns the number of body bytes written so far. Safe to call
// concurrently with Write.
func (w *Writer) Written() int64 { return w.written.Load() }

// Key returns the key being written.
func (w *Writer) Key() string { return w.key }

// ReadAt reads body bytes already written: it never reads past Written() and
// returns io.EOF (with n < len(p)) at that point, even if more bytes will
// follow; the caller decides whether to wait for more. It is safe to call
// concurrently with Write, Commit and other ReadAt calls, and keeps working
// after Commit until Close. After Abort it returns ErrAborted; after Close,
// ErrClosed.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("storage: negative offset")
	}
	w.fmu.RLock()
	defer w.fmu.RUnlock()
	if w.buffered {
		avail := w.written.Load() - off
		if avail <= 0 {
			return 0, io.EOF
		}
		n := copy(p, w.buf[off:off+avail])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	if w.f == nil {
		if w.aborted.Load() {
			return 0, ErrAborted
		}
		return 0, ErrClosed
	}
	avail := w.written.Load() - off
	if avail <= 0 {
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > avail {
		p, short = p[:avail], true
	}
	n, err := w.f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Commit publishes the written body under the writer's key with meta.
//
// meta.Key is ignored (the writer's key is used). If meta.Size >= 0 it must
// equal Written(), otherwise the version is aborted and ErrSizeMismatch is
// returned; a negative Size skips the check. A zero meta.Stored is set to
// now. Commit fsyncs the blob (per Options.Fsync), renames it into blobs/,
// fsyncs the directory (per policy), and only then commits one index
// transaction that puts the record, replaces the key's tag rows and
// schedules the previous version's blob for deletion. Finally it evicts if
// the store is over MaxBytes. Any failure aborts the version. When two
// versions of a key are committed concurrently, the later index commit wins
// and the other's blob is deleted.
func (w *Writer) Commit(meta Meta) error { return w.commit(meta, false) }

// CommitBatched is Commit for a copy no client waits for (the cache's
// write-behind): its index transaction may wait up to 2 ms for other
// batched commits to share it (see groupCommit); any other commit, or
// Close, ends the wait.
func (w *Writer) CommitBatched(meta Meta) error { return w.commit(meta, true) }

func (w *Writer) commit(meta Meta, batched bool) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stateErr(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.abortLocked()
		}
	}()
	s := w.s
	size := w.written.Load()
	if err := checkMeta(meta, size); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()

	rec := w.indexRecord(meta, size, s.now())
	var old *record
	if w.buffered {
		if old, err = w.commitPacked(rec, batched); err != nil {
			return err
		}
	} else {
		enc := encodeRecord(nil, rec)
		if err := w.publishBlob(); err != nil {
			return err
		}
		if old, err = s.indexVersion(rec, enc, nil, batched); err != nil {
			s.removeBlob(w.id)
			return err
		}
	}
	if old != nil && old.id != w.id {
		s.freeVersion(old.id, old.seg)
	}
	w.state = wCommitted
	s.evict()
	return nil
}

// commitPacked appends the buffered body to the active segment and names
// it in the index. The body is written (and, under FsyncAlways, synced by
// the group commit) before the index transaction, into a region no other
// commit ever writes, so an index entry names either nothing or this body.
func (w *Writer) commitPacked(rec *record, batched bool) (*record, error) {
	s := w.s
	seg, off := w.pseg, w.poff
	if seg == nil {
		var err error
		if seg, off, err = s.appendPacked(w.buf); err != nil {
			return nil, err
		}
	}
	w.pseg = nil // its pin is ours to release now
	defer s.unpin(seg)
	rec.seg, rec.off = seg.id, off
	return s.indexVersion(rec, encodeRecord(nil, rec), seg, batched)
}

// checkMeta rejects a commit whose meta disagrees with the size written
// (unless meta.Size is negative) or carries an invalid tag.
func checkMeta(meta Meta, size int64) error {
	if meta.Size >= 0 && meta.Size != size {
		return fmt.Errorf("%w: meta says %d, wrote %d", ErrSizeMismatch, meta.Size, size)
	}
	for _, t := range meta.Tags {
		if t == "" || len(t) > maxTagLen || strings.IndexByte(t, 0) >= 0 {
			return fmt.Errorf("storage: invalid tag %q", t)
		}
	}
	return nil
}

// indexRecord builds the index record of the version being committed at now:
// the block checksums including the final partial block, tags sorted and
// deduplicated, and Stored defaulting to now.
func (w *Writer) indexRecord(meta Meta, size int64, now time.Time) *record {
	crcs := w.crcs
	if w.blockN > 0 {
		crcs = append(slices.Clip(crcs), w.blockCR)
	}
	rec := &record{
		key: w.key, header: meta.Header, size: size, id: w.id,
		blockSize: BlockSize, crcs: crcs,
		stored: meta.Stored, expires: meta.Expires, atime: now,
		tags: slices.Compact(slices.Sorted(slices.Values(meta.Tags))),
	}
	if rec.stored.IsZero() {
		rec.stored = now
	}
	return rec
}

// publishBlob makes the temporary file the version's blob: fsync it (per
// policy), register its id as fresh so recovery does not take it for an
// orphan, rename it into blobs/ and fsync the directory (per policy). If the
// directory fsync fails the renamed blob is removed.
func (w *Writer) publishBlob() error {
	s := w.s
	if s.opts.Fsync == FsyncAlways {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("storage: fsync blob: %w", err)
		}
	}
	dst := s.blobPath(w.id)
	if err := s.ensureBlobDir(filepath.Dir(dst)); err != nil {
		return err
	}
	s.mu.Lock()
	if s.fresh != nil {
		s.fresh[w.id] = struct{}{} // recovery must not take it for an orphan
	}
	s.mu.Unlock()
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return fmt.Errorf("storage: publishing blob: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		if err := syncDir(filepath.Dir(dst)); err != nil {
			s.removeBlob(w.id)
			return err
		}
	}
	return nil
}

// indexVersion names rec's blob under rec.key in one index transaction
// (the record enc replaces the key's previous record and tag rows) and
// then in the eviction index, both under the key's stripe lock. It returns
// the record it replaced, if any; the caller deletes that blob, and on error
// its own.
func (s *Store) indexVersion(rec *record, enc []byte, seg *segment, batched bool) (old *record, err error) {
	mu := s.stripe(rec.key)
	mu.Lock()
	defer mu.Unlock()
	err = s.groupUpdateSync(seg, batched, func(tx *bolt.Tx) error {
		var err error
		if old, err = deleteRecord(tx, rec.key, 0); err != nil {
			return err
		}
		if err := tx.Bucket(bucketObjects).Put([]byte(rec.key), enc); err != nil {
			return err
		}
		tags := tx.Bucket(bucketTags)
		for _, t := range rec.tags {
			if err := tags.Put(tagRow(t, rec.key), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: committing index: %w", err)
	}
	s.mu.Lock()
	s.lru.set(rec.key, rec.id, seg, rec.size, rec.atime.UnixNano(), timeToNanos(rec.expires))
	s.mu.Unlock()
	return old, nil
}

// ensureBlobDir creates a fan-out directory on first use (fsyncing its
// parents under FsyncAlways so the new entry itself is durable).
func (s *Store) ensureBlobDir(dir string) error {
	if _, ok := s.dirsMade.Load(dir); ok {
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if s.opts.Fsync == FsyncAlways {
			for _, d := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
				if err := syncDir(d); err != nil {
					return err
				}
			}
		}
	}
	s.dirsMade.Store(dir, struct{}{})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage: fsync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("storage: fsync dir: %w", err)
	}
	return nil
}

// Prepare writes a body that Commit would pack into a segment there now,
// so that Commit only names it in the index: the cache's write-behind
// prepares its copies one by one and then commits them together, in few
// index transactions. Nothing may be written after it. A prepared body
// that is never committed is dead bytes in its segment, reclaimed like
// those of a replaced one. For a body in a file of its own (larger than
// PackBelow) it does nothing.
func (w *Writer) Prepare() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stateErr(); err != nil {
		return err
	}
	if !w.buffered || w.pseg != nil {
		return nil
	}
	s := w.s
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	seg, off, err := s.appendPacked(w.buf)
	if err != nil {
		w.abortLocked()
		return err
	}
	w.pseg, w.poff = seg, off
	return nil
}

// Abort discards the version: it closes and removes the temporary file.
// Readers using ReadAt get ErrAborted. Abort is idempotent, and a no-op after
// a successful Commit (so `defer w.Abort()` is a safe pattern).
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != wWriting {
		return nil
	}
	w.abortLocked()
	return nil
}

func (w *Writer) abortLocked() {
	w.state = wAborted
	w.aborted.Store(true)
	if w.pseg != nil {
		w.s.unpin(w.pseg)
		w.pseg = nil
	}
	w.fmu.Lock()
	w.buffered, w.buf = false, nil
	if w.f != nil {
		name := w.f.Name()
		w.f.Close()
		w.f = nil
		// After a failed Commit the file may already have been renamed and
		// removed; only the temp path is ours to remove here.
		os.Remove(name)
	}
	w.fmu.Unlock()
	w.forget()
}

func (w *Writer) forget() {
	w.s.mu.Lock()
	delete(w.s.writers, w)
	w.s.mu.Unlock()
}

// Close releases the file descriptor. A writer that was neither committed
// nor aborted is aborted. Call it once the last ReadAt user is done.
// Idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == wWriting {
		w.abortLocked()
	}
	w.closed = true
	w.fmu.Lock()
	defer w.fmu.Unlock()
	if w.buffered {
		w.buffered, w.buf = false, nil
		w.forget()
		return nil
	}
	if w.f != nil {
		err := w.f.Close()
		w.f = nil
		w.forget()
		return err
	}
	return nil
}
