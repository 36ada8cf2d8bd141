package storage

import (
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Meta is the typed metadata stored with an object.
type Meta struct {
	// Key is the cache key the object is stored under.
	Key string
	// Header is an opaque block (the cache package's encoding of status,
	// response headers and timing); storage never parses it. Get returns a
	// copy the caller owns.
	Header []byte
	// Size is the body length in bytes. For Commit, a negative Size skips the
	// length check.
	Size int64
	// Stored is when the object was stored; Commit sets a zero value to now.
	Stored time.Time
	// Expires is the freshness deadline the cache computed; storage uses it
	// only to prefer evicting already-expired objects. Zero means unknown.
	Expires time.Time
	// Tags are the object's purge tags (indexed for KeysByTag). They must be
	// non-empty, at most 1 KiB and contain no NUL byte.
	Tags []string
}

// Object is one committed version of an object, opened for reading. It keeps
// reading that version even if a newer one is committed or the key is
// deleted meanwhile. Close it when done.
type Object struct {
	// Meta is the object's metadata; the caller may keep it after Close.
	Meta Meta

	s         *Store
	id        uint64
	f         *os.File
	seg       *segment // a packed body's segment (f is its shared descriptor), or nil
	base      int64    // the body's offset in f
	blockSize int64
	crcs      []uint32
}

// Get opens the committed object stored under key. A missing key, or an
// entry whose blob is missing or has the wrong size, yields ErrNotFound (the
// broken entry is dropped and counted in Stats.SizeMismatches). Get records
// the access in memory only; access times reach the index in batches.
func (s *Store) Get(key string) (*Object, error) { return s.get(key, true) }

// Peek is Get without recording an access: a reader that is not a client
// (the cache's warm start) leaves the recency order as it found it.
func (s *Store) Peek(key string) (*Object, error) { return s.get(key, false) }

func (s *Store) get(key string, touch bool) (*Object, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	// The in-memory index names every committed key: a miss costs no
	// index transaction.
	s.mu.Lock()
	_, known := s.lru.m[key]
	known = known || s.lru.loading // until loaded, ask the index
	s.mu.Unlock()
	if !known {
		return nil, ErrNotFound
	}
	for attempt := 0; ; attempt++ {
		r, err := s.lookup(key)
		if err != nil {
			return nil, err
		}
		if r.seg != 0 {
			o, err := s.getPacked(r, touch)
			if o != nil || err != nil {
				return o, err
			}
			if n, err := s.dropBroken(r, -1); n > 0 || err != nil {
				return nil, cmp.Or(err, ErrNotFound)
			}
			if attempt >= 3 {
				return nil, ErrNotFound
			}
			continue
		}
		f, err := os.Open(s.blobPath(r.id))
		var size int64 = -1
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil {
				size = fi.Size()
			}
		}
		if err == nil && size == r.size {
			if touch {
				s.mu.Lock()
				s.lru.touch(key, s.now().UnixNano())
				s.mu.Unlock()
			}
			return &Object{
				Meta: Meta{
					Key: r.key, Header: r.header, Size: r.size,
					Stored: r.stored, Expires: r.expires, Tags: r.tags,
				},
				s: s, id: r.id, f: f, blockSize: r.blockSize, crcs: r.crcs,
			}, nil
		}
		if f != nil {
			f.Close()
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("storage: opening blob: %w", err)
		}
		// Missing or wrong size. If the entry still names this blob it is
		// broken: drop it. Otherwise a newer version replaced it while we
		// looked; try again.
		if n, err := s.dropBroken(r, size); n > 0 || err != nil {
			return nil, cmp.Or(err, ErrNotFound)
		}
		if attempt >= 3 {
			return nil, ErrNotFound
		}
	}
}

// dropBroken drops key's entry if it still names r's version, whose body is
// missing or short (got is the blob's size, -1 if unknown). It returns how
// many entries it dropped (0: a newer version replaced r meanwhile).
func (s *Store) dropBroken(r *record, got int64) (int, error) {
	n, err := s.removeEntries([]victim{{key: r.key, id: r.id}})
	if n > 0 {
		s.sizeMismatches.Add(1)
		s.log.Warn("storage: body missing or short; entry dropped",
			"key", r.key, "id", r.id, "segment", r.seg, "want", r.size, "got", got)
	}
	return n, err
}

// getPacked opens the packed body r names. It returns nil (and no error)
// when the segment is gone or ends before the body does.
func (s *Store) getPacked(r *record, touch bool) (*Object, error) {
	seg, err := s.acquireSegment(r.seg)
	if seg == nil || err != nil {
		return nil, err
	}
	s.mu.Lock()
	ok := r.off+r.size <= min(seg.written, seg.fileSize)
	if ok && touch {
		s.lru.touch(r.key, s.now().UnixNano())
	}
	f := seg.f
	s.mu.Unlock()
	if !ok {
		s.releaseSegment(seg)
		return nil, nil
	}
	return &Object{
		Meta: Meta{
			Key: r.key, Header: r.header, Size: r.size,
			Stored: r.stored, Expires: r.expires, Tags: r.tags,
		},
		s: s, id: r.id, f: f, seg: seg, base: r.off, blockSize: r.blockSize, crcs: r.crcs,
	}, nil
}

// lookup reads and decodes key's record. An undecodable record is dropped.
func (s *Store) lookup(key string) (*record, error) {
	var r *record
	var derr error
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get([]byte(key))
		if v == nil {
			return nil
		}
		r, derr = decodeRecord(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading index: %w", err)
	}
	if derr != nil {
		s.log.Error("storage: undecodable index record; dropping", "key", key, "err", derr)
		s.deleteLocked(key)
		return nil, ErrNotFound
	}
	if r == nil {
		return nil, ErrNotFound
	}
	return r, nil
}

// deleteLocked removes key's record whatever it names; for callers already
// inside begin/end. The blob, if any, is left to recovery.
func (s *Store) deleteLocked(key string) {
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	s.db.Update(func(tx *bolt.Tx) error {
		_, err := deleteRecord(tx, key, 0)
		return err
	})
	s.mu.Lock()
	s.lru.remove(key, 0)
	s.mu.Unlock()
}

// Size returns the body length.
func (o *Object) Size() int64 { return o.Meta.Size }

// File returns the open blob, for sendfile-style copying after Verify. The
// caller must not close it (use Object.Close) and should read it with
// ReadAt or an io.SectionReader, as the offset is shared. A body packed in
// a segment has no file of its own: File returns nil, and it is read with
// NewReader.
func (o *Object) File() *os.File {
	if o.seg != nil {
		return nil
	}
	return o.f
}

// Packed reports whether the body is packed in a segment file.
func (o *Object) Packed() bool { return o.seg != nil }

// Close closes the blob file (or releases the segment). Idempotent.
func (o *Object) Close() error {
	if o.f == nil {
		return nil
	}
	f := o.f
	o.f = nil
	if o.seg != nil {
		o.s.releaseSegment(o.seg)
		return nil
	}
	return f.Close()
}

// Verify reads every block and checks its CRC32C. On a mismatch (or a short
// read) it drops the entry and its blob, counts Stats.ChecksumFailures and
// returns ErrCorrupt.
func (o *Object) Verify() error {
	bp := o.s.blocks.Get().(*[]byte)
	defer o.s.blocks.Put(bp)
	for i := range o.crcs {
		if _, err := o.readBlock(i, *bp); err != nil {
			return err
		}
	}
	return nil
}

// readBlock reads block i into buf (len ≥ blockSize) and verifies it,
// returning the block's bytes.
func (o *Object) readBlock(i int, buf []byte) ([]byte, error) {
	if o.f == nil {
		return nil, ErrClosed
	}
	start := int64(i) * o.blockSize
	n := min(o.blockSize, o.Meta.Size-start)
	b := buf[:n]
	if _, err := o.f.ReadAt(b, o.base+start); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, o.corrupt(i, "short read")
		}
		return nil, fmt.Errorf("storage: reading blob: %w", err)
	}
	if crc32.Checksum(b, castagnoli) != o.crcs[i] {
		return nil, o.corrupt(i, "checksum mismatch")
	}
	return b, nil
}

// corrupt drops the object's entry (if it still names this version) and
// returns ErrCorrupt.
func (o *Object) corrupt(block int, why string) error {
	s := o.s
	// Counted and logged once per version: readers that found the same
	// bad block concurrently (a request and the warm start) drop it once.
	if s.begin() == nil {
		n, err := s.removeEntries([]victim{{key: o.Meta.Key, id: o.id}})
		if err != nil {
			s.log.Error("storage: dropping corrupt entry", "err", err)
		}
		if n > 0 {
			s.checksumFailures.Add(1)
			s.log.Error("storage: corrupt body; entry dropped", "key", o.Meta.Key, "id", o.id, "segment", o.seg != nil, "block", block, "why", why)
		}
		s.end()
	}
	return fmt.Errorf("%w: %s: block %d: %s", ErrCorrupt, o.Meta.Key, block, why)
}

// NewReader returns a verifying reader over the body bytes [off, off+n),
// clamped to the body (n < 0 means to the end). It reads whole blocks and
// checks each block's CRC32C before returning any byte of it; on a mismatch
// it returns ErrCorrupt (and drops the entry as Verify does). The reader
// reads through the Object's file, so it must not be used after Close.
func (o *Object) NewReader(off, n int64) io.Reader {
	off = max(0, min(off, o.Meta.Size))
	end := o.Meta.Size
	if n >= 0 && off+n < end {
		end = off + n
	}
	return &blockReader{o: o, pos: off, end: end, cur: -1}
}

type blockReader struct {
	o        *Object
	pos, end int64
	bp       *[]byte
	block    []byte // verified bytes of block cur
	cur      int
	err      error
}

func (r *blockReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.pos >= r.end {
		r.release()
		r.err = io.EOF
		return 0, io.EOF
	}
	bs := r.o.blockSize
	i := int(r.pos / bs)
	if i != r.cur {
		if r.bp == nil {
			r.bp = r.o.s.blocks.Get().(*[]byte)
		}
		b, err := r.o.readBlock(i, *r.bp)
		if err != nil {
			r.release()
			r.err = err
			return 0, err
		}
		r.block, r.cur = b, i
	}
	inBlock := r.pos - int64(i)*bs
	avail := min(int64(len(r.block))-inBlock, r.end-r.pos)
	n := copy(p, r.block[inBlock:inBlock+avail])
	r.pos += int64(n)
	if r.pos >= r.end {
		r.release() // readers often stop at the end without reading EOF
	}
	return n, nil
}

func (r *blockReader) release() {
	if r.bp != nil {
		r.o.s.blocks.Put(r.bp)
		r.bp, r.block = nil, nil
	}
}

// ReadAll reads the whole body, verified, into one buffer of its size.
func (o *Object) ReadAll() ([]byte, error) {
	body := make([]byte, o.Meta.Size)
	if _, err := io.ReadFull(o.NewReader(0, o.Meta.Size), body); err != nil {
		return nil, err
	}
	return body, nil
}
