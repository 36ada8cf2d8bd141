package cache

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/edged-proxy/edged/storage"
)

// Body is a response body, whatever holds it: memory, a disk object, a
// fill still being written (read-while-write) or an origin response passed
// through unstored. Every Result carries one; the edge reads ranges of it
// with NewReader and closes it when the response is done.
type Body interface {
	// Size is the body length, or -1 while it is not known (a streaming
	// fill or a live response of unknown length).
	Size() int64
	// NewReader reads n bytes from off (n < 0: to the end). Readers of a
	// streaming fill block until the bytes arrive; a failed fill or a
	// failed checksum ends the reader with an error, never with wrong bytes.
	// A live body can be read once, from offset 0.
	NewReader(off, n int64) io.Reader
	// Close releases the body; it must be called once.
	Close() error
}

// memBody is a body held in memory: a stored entry's, shared by every
// reader. A *memBody points into the entry, so handing one out allocates
// nothing.
type memBody []byte

func (b *memBody) Size() int64 { return int64(len(*b)) }

func (b *memBody) NewReader(off, n int64) io.Reader {
	if n < 0 {
		n = int64(len(*b)) - off
	}
	return bytes.NewReader((*b)[off : off+n])
}

func (b *memBody) Close() error { return nil }

// Bytes returns the body itself, so a writer can send it without a copy.
// The caller must not modify it.
func (b *memBody) Bytes() []byte { return *b }

// ErrFillFailed ends readers of a streaming fill that did not complete.
var ErrFillFailed = errors.New("cache: origin fill failed")

// diskBody is a disk-tier object. Verified objects are read straight from
// the file (so HTTP/1.1 can use sendfile); others through the block
// verifying reader.
type diskBody struct {
	obj      *storage.Object
	verified bool
}

func (b *diskBody) Size() int64 { return b.obj.Size() }

func (b *diskBody) NewReader(off, n int64) io.Reader {
	if n < 0 {
		n = b.obj.Size() - off
	}
	if !b.verified {
		return b.obj.NewReader(off, n)
	}
	// The file is this request's own descriptor: seeking it is safe, and a
	// LimitedReader over an *os.File lets the edge use sendfile.
	f := b.obj.File()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return errReader{err}
	}
	return &io.LimitedReader{R: f, N: n}
}

func (b *diskBody) Close() error { return b.obj.Close() }

// stream is a fill in progress whose body is written to a disk-tier Writer
// while any number of readers read what has arrived so far. Its flight
// counts the readers and closes the writer after the last one.
type stream struct {
	entry *Entry // metadata (no Body)
	w     *storage.Writer
	size  int64 // expected length, -1 if unknown

	mu      sync.Mutex
	cond    sync.Cond
	written int64
	done    bool  // the fill ended (err tells how)
	err     error // non-nil: the fill failed

	// When the disk refuses a write (full, read-only, over budget), the
	// rest of the body is kept in memory so that the clients already
	// reading still get all of it; the object is then not stored.
	diskFailed bool
	onDisk     int64  // bytes readable from the file
	tail       []byte // bytes from onDisk on, once the disk failed
}

// maxStreamTail bounds the memory a stream may fall back to when the disk
// fails under it; a larger body fails the readers instead.
const maxStreamTail = 64 << 20

func newStream(e *Entry, w *storage.Writer, size int64) *stream {
	s := &stream{entry: e, w: w, size: size}
	s.cond.L = &s.mu
	return s
}

// appendTail keeps p in memory after a disk failure; false when the body
// outgrows maxStreamTail.
func (s *stream) appendTail(p []byte) bool {
	s.mu.Lock()
	if !s.diskFailed {
		s.diskFailed, s.onDisk = true, s.written
	}
	ok := len(s.tail)+len(p) <= maxStreamTail
	if ok {
		s.tail = append(s.tail, p...)
		s.written += int64(len(p))
	}
	s.mu.Unlock()
	s.cond.Broadcast()
	return ok
}

// degraded reports whether the disk failed under the stream.
func (s *stream) degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.diskFailed
}

// failed reports whether the fill ended in error.
func (s *stream) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done && s.err != nil
}

// progress records n more bytes written.
func (s *stream) progress(n int) {
	s.mu.Lock()
	s.written += int64(n)
	s.mu.Unlock()
	s.cond.Broadcast()
}

// finish ends the fill (err nil: complete).
func (s *stream) finish(err error) {
	s.mu.Lock()
	s.done = true
	s.err = err
	if err == nil {
		s.size = s.written
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// streamBody is one reader's view of a stream.
type streamBody struct {
	s      *stream
	f      *flight
	closed bool
}

func (b *streamBody) Size() int64 {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	return b.s.size
}

func (b *streamBody) NewReader(off, n int64) io.Reader {
	end := int64(-1)
	if n >= 0 {
		end = off + n
	}
	return &streamReader{s: b.s, off: off, end: end}
}

func (b *streamBody) Close() error {
	if !b.closed {
		b.closed = true
		b.f.release()
	}
	return nil
}

type streamReader struct {
	s        *stream
	off, end int64 // end < 0: to the end of the body
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.end >= 0 && r.off >= r.end {
		return 0, io.EOF
	}
	s := r.s
	s.mu.Lock()
	for s.written <= r.off && !s.done {
		s.cond.Wait()
	}
	avail, done, err := s.written, s.done, s.err
	if s.diskFailed && r.off >= s.onDisk && r.off < avail {
		// Past what reached the disk: from the in-memory tail.
		end := avail
		if r.end >= 0 && r.end < end {
			end = r.end
		}
		n := copy(p, s.tail[r.off-s.onDisk:end-s.onDisk])
		s.mu.Unlock()
		r.off += int64(n)
		return n, nil
	}
	if s.diskFailed {
		avail = s.onDisk // the file holds only this much
	}
	s.mu.Unlock()
	if err != nil {
		return 0, ErrFillFailed
	}
	if avail <= r.off {
		if done {
			if r.end >= 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, io.EOF
		}
	}
	limit := avail
	if r.end >= 0 && r.end < limit {
		limit = r.end
	}
	if int64(len(p)) > limit-r.off {
		p = p[:limit-r.off]
	}
	n, rerr := s.w.ReadAt(p, r.off)
	r.off += int64(n)
	if rerr == io.EOF && n > 0 {
		rerr = nil
	}
	return n, rerr
}

// objBody is one reader's view of a disk object a flight shares: its
// readers verify block by block and read with pread, each at its own
// offset.
type objBody struct {
	obj    *storage.Object
	f      *flight
	closed bool
}

func (b *objBody) Size() int64                      { return b.obj.Size() }
func (b *objBody) NewReader(off, n int64) io.Reader { return b.obj.NewReader(off, n) }

func (b *objBody) Close() error {
	if !b.closed {
		b.closed = true
		b.f.release()
	}
	return nil
}

// liveBody is an origin response body passed through unstored: read once,
// from the start.
type liveBody struct {
	rc     io.ReadCloser
	size   int64
	f      *flight // nil outside a flight (a pass-through response)
	read   bool
	closed bool
}

// LiveBody returns the Body of an origin response streamed through without
// being stored; closing it closes resp.Body.
func LiveBody(resp *http.Response) Body { return &liveBody{rc: resp.Body, size: resp.ContentLength} }

func (b *liveBody) Size() int64 { return b.size }

func (b *liveBody) NewReader(off, n int64) io.Reader {
	if b.read || off != 0 {
		return errReader{errors.New("cache: a live body is read once, from the start")}
	}
	b.read = true
	if n >= 0 {
		return io.LimitReader(b.rc, n)
	}
	return b.rc
}

func (b *liveBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.rc.Close()
	if b.f != nil {
		b.f.release()
	}
	return err
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
