// Package logbuf is a buffered, periodically flushed writer for the access
// log: one write system call per buffer instead of one per request, made by
// a background goroutine rather than by the request that filled the buffer.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer buffers writes to an underlying writer. A background goroutine
// writes the buffer out when it fills and every interval; Flush and Close
// write it out at once. It is safe for concurrent use; each Write is kept
// whole (a line is never split across two writes to the output).
//
// A Write only appends under a lock: the output's write happens outside it,
// so a slow log file never holds up the requests that log. If the output
// falls behind by more than four buffers, Write writes the backlog itself
// (back-pressure instead of unbounded memory).
type Writer struct {
	size int
	out  io.Writer

	mu    sync.Mutex // guards buf, spare
	buf   []byte     // lines not yet handed to the output
	spare []byte     // an empty buffer to swap in, or nil while in use

	omu sync.Mutex // serializes writes to out, in buffer order; taken under mu
	err error      // last output error; guarded by omu

	kick chan struct{} // buf reached size
	stop chan struct{}
	done chan struct{}
}

// New returns a Writer over out with a buffer of size bytes (0: 64 KiB)
// written out at least every interval (0: 200 ms).
func New(out io.Writer, size int, interval time.Duration) *Writer {
	if size <= 0 {
		size = 64 << 10
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	b := &Writer{
		size: size, out: out,
		buf: make([]byte, 0, bufCap(size)), spare: make([]byte, 0, bufCap(size)),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go b.loop(interval)
	return b
}

// bufCap is the capacity of a buffer: room for the back-pressure limit of
// four buffers' worth plus one, so that appends never grow it (a copy of
// everything buffered) while the flusher catches up.
func bufCap(size int) int { return 5 * size }

// Write buffers p. It returns len(p) and no error; output errors are
// reported by Flush and Close.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	n := len(b.buf)
	b.mu.Unlock()
	if n >= b.size {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	if n >= 4*b.size {
		b.Flush()
	}
	return len(p), nil
}

// Flush writes out what is buffered and returns the last output error.
func (b *Writer) Flush() error {
	b.mu.Lock()
	if len(b.buf) == 0 {
		b.mu.Unlock()
		b.omu.Lock()
		defer b.omu.Unlock()
		return b.err
	}
	full := b.buf
	b.buf, b.spare = b.spare, nil
	if b.buf == nil {
		b.buf = make([]byte, 0, bufCap(b.size))
	}
	// Taking omu before letting go of mu keeps buffers in order: the next
	// swap cannot reach the output before this one. The lock order is
	// always mu, then omu: nothing takes mu while holding omu.
	b.omu.Lock()
	b.mu.Unlock()
	if _, err := b.out.Write(full); err != nil {
		b.err = err
	}
	err := b.err
	b.omu.Unlock()
	if cap(full) <= 2*bufCap(b.size) { // an oversized one (a huge line) is not kept
		b.mu.Lock()
		if b.spare == nil {
			b.spare = full[:0]
		}
		b.mu.Unlock()
	}
	return err
}

func (b *Writer) loop(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.Flush()
		case <-b.kick:
			b.Flush()
		case <-b.stop:
			return
		}
	}
}

// Close stops the flusher and flushes what is left.
func (b *Writer) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
	return b.Flush()
}
