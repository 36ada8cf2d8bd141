// Package logbuf is a buffered, periodically flushed writer for the access
// log: one write system call per buffer instead of one per request.
package logbuf

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Writer buffers writes to an underlying writer and flushes them when the
// buffer fills, every interval, and on Close. It is safe for concurrent use;
// each Write is kept whole (a log line is never split across flushes unless
// it is larger than the buffer).
type Writer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// New returns a Writer over out with a buffer of size bytes (0: 64 KiB)
// flushed at least every interval (0: 200 ms).
func New(out io.Writer, size int, interval time.Duration) *Writer {
	if size <= 0 {
		size = 64 << 10
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	b := &Writer{w: bufio.NewWriterSize(out, size), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop(interval)
	return b
}

// Write buffers p.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w.Available() < len(p) && b.w.Buffered() > 0 {
		if err := b.w.Flush(); err != nil {
			return 0, err
		}
	}
	return b.w.Write(p)
}

// Flush writes out what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

func (b *Writer) loop(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
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
