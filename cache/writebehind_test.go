package cache

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/testkit"
)

func TestWriteQueueBounds(t *testing.T) {
	q := writeQueue{maxN: 2, maxBytes: 100}
	for i, st := range []struct {
		take int64 // -1: done with the first taken
		ok   bool
	}{
		{60, true},
		{50, false}, // 110 bytes
		{40, true},  // 100 bytes: at the bound
		{0, false},  // two pending: the count bound
		{-1, true},  // done(60): 40 bytes pending
		{70, false}, // 110 bytes
		{60, true},
		{-2, true}, // done(40): 60 bytes pending
		{40, true},
	} {
		switch st.take {
		case -1:
			q.done(60)
		case -2:
			q.done(40)
		default:
			if got := q.take(st.take); got != st.ok {
				t.Fatalf("step %d: take(%d) = %v, want %v (n %d, bytes %d)", i, st.take, got, st.ok, q.n, q.bytes)
			}
		}
	}
}

// The byte bound reaches the cache: a body larger than what the queue may
// hold is skipped (counted) and memory-only; a smaller one is written.
func TestWriteBehindByteBound(t *testing.T) {
	c, d, reg := admitCache(t, AdmitAlways, 1<<20)
	c.writeQ.maxBytes = 1000
	o := &sizeOrigin{}
	get(t, c, o, "/big-2000")
	get(t, c, o, "/small-500")
	if onDisk(t, c, d, "/big-2000") {
		t.Error("a body over the queue's byte bound was written")
	}
	if !onDisk(t, c, d, "/small-500") {
		t.Error("a body within the queue's byte bound was not written")
	}
	for res, want := range map[string]float64{"skipped": 1, "stored": 1} {
		if got, _ := testkit.Metric(t, reg, "edged_disk_writes_total", "result", res); got != want {
			t.Errorf("disk writes{result=%q} = %v, want %v", res, got, want)
		}
	}
	if c.writeQ.n != 0 || c.writeQ.bytes != 0 {
		t.Errorf("queue holds %d copies, %d bytes after they landed", c.writeQ.n, c.writeQ.bytes)
	}
}

// A batch window lets its copies go together: as its max-th joins, or
// after its linger; the next copy opens a new window.
func TestBatchWindow(t *testing.T) {
	w := &batchWindow{linger: time.Hour, max: 5}
	var released atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { w.wait(); released.Add(1) })
	}
	// Four wait; none may go before the fifth joins (an hour's linger).
	for {
		w.mu.Lock()
		n := w.n
		w.mu.Unlock()
		if n == 4 {
			break
		}
		runtime.Gosched()
	}
	if n := released.Load(); n != 0 {
		t.Fatalf("%d copies left an open window before it filled", n)
	}
	w.wait() // the fifth closes it
	wg.Wait()
	if n := released.Load(); n != 4 {
		t.Fatalf("%d of 4 copies released", n)
	}
	w.mu.Lock()
	open := w.ch != nil
	w.mu.Unlock()
	if open {
		t.Fatal("a closed window is still open to new copies")
	}

	// A window that does not fill closes after its linger.
	w = &batchWindow{linger: time.Millisecond, max: 1000}
	w.wait()
}

// Write-behind copies of fills made one after another wait in one window
// (here until the 64th joins) and then commit together, sharing index
// transactions; each on its own, they would take about one each.
func TestWriteBehindBatchesCommits(t *testing.T) {
	c, d, _ := admitCache(t, AdmitAlways, 1<<20)
	c.writeBatch = batchWindow{linger: time.Hour, max: 64}
	o := &sizeOrigin{}
	path := func(i int) string { return fmt.Sprintf("/k%d-%d", i, 100+i) }
	before := d.Stats().IndexCommits
	for i := range 63 {
		get(t, c, o, path(i))
	}
	// Nothing has been committed: the copies wait for the window.
	for deadline := time.Now().Add(30 * time.Second); ; {
		c.writeBatch.mu.Lock()
		n := c.writeBatch.n
		c.writeBatch.mu.Unlock()
		if n == 63 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 63 copies joined the window", n)
		}
		runtime.Gosched()
	}
	if n := d.Stats().IndexCommits - before; n != 0 {
		t.Fatalf("%d index transactions while the window was open", n)
	}
	get(t, c, o, path(63)) // the 64th closes it
	c.writers.Wait()
	n := d.Stats().IndexCommits - before
	for i := range 64 {
		if !onDisk(t, c, d, path(i)) {
			t.Fatalf("copy %d not on disk", i)
		}
	}
	if n >= 64 {
		t.Errorf("64 copies released together took %d index transactions: none shared", n)
	}
	t.Logf("64 copies in %d index transactions", n)
}
