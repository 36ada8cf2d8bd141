package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes that reached it
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.n
}

func TestLinesArriveWholeAndBatched(t *testing.T) {
	out := new(lockedBuffer)
	w := New(out, 1024, time.Hour) // no timed flush during the test
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				w.Write([]byte(strings.Repeat(string(rune('a'+g)), 10+i%7) + "\n"))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, n := out.snapshot()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if strings.Trim(l, l[:1]) != "" {
			t.Fatalf("a line was interleaved: %q", l)
		}
	}
	if n >= 800/2 {
		t.Errorf("%d writes reached the output for 800 lines: not batched", n)
	}
}

func TestPeriodicFlush(t *testing.T) {
	out := &notifyingWriter{wrote: make(chan struct{}, 1)}
	w := New(out, 1024, 10*time.Millisecond)
	defer w.Close()
	w.Write([]byte("hello\n"))
	timeout := time.After(5 * time.Second)
	for {
		select {
		case <-out.wrote:
		case <-timeout:
			t.Fatal("not flushed by the timer")
		}
		if s, _ := out.snapshot(); s == "hello\n" {
			return
		}
	}
}

// notifyingWriter signals on wrote after each Write, so that a test waits
// for the flush itself rather than polling the buffer.
type notifyingWriter struct {
	lockedBuffer
	wrote chan struct{} // buffered; a pending signal covers later writes
}

func (n *notifyingWriter) Write(p []byte) (int, error) {
	k, err := n.lockedBuffer.Write(p)
	select {
	case n.wrote <- struct{}{}:
	default:
	}
	return k, err
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	lockedBuffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return b.lockedBuffer.Write(p)
}

// A stalled output must not hold up writers while the backlog is under
// four buffers: the output's write happens outside the buffer's lock.
func TestSlowOutputDoesNotBlockWrites(t *testing.T) {
	out := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	w := New(out, 100, time.Hour)
	line := []byte(strings.Repeat("x", 9) + "\n")
	for range 10 { // fills the buffer: the flusher starts a write that stalls
		w.Write(line)
	}
	select {
	case <-out.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("a full buffer did not start a write")
	}
	done := make(chan struct{})
	go func() {
		for range 30 { // 300 bytes more: under the back-pressure limit
			w.Write(line)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked behind a stalled output")
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := out.snapshot(); len(s) != 400 {
		t.Fatalf("output has %d bytes, want 400", len(s))
	}
}

// Writers past the back-pressure limit flush while the flusher goroutine
// flushes too; neither may wait for the other's lock. (Regression: the
// flusher returned its buffer under the output lock while a writer held
// the buffer lock and waited for the output lock: a deadlock, seen as a
// hung benchmark on one CPU.)
func TestConcurrentFlushesDoNotDeadlock(t *testing.T) {
	out := new(lockedBuffer)
	w := New(out, 64, time.Millisecond)
	line := []byte("0123456789\n")
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5000 {
					w.Write(line)
				}
			})
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers deadlocked with the flusher")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := out.snapshot(); len(s) != 8*5000*len(line) {
		t.Fatalf("output has %d bytes, want %d", len(s), 8*5000*len(line))
	}
}
