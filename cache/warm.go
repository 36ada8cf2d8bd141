package cache

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// Warm start: after a restart the memory tier is empty while the disk
// tier still holds what clients asked for last. WarmStart copies the most
// recently used small disk objects into memory in the background, bounded
// in bytes, time and read rate, so the first requests after a restart are
// memory hits rather than disk reads.

// WarmOptions bounds a warm start. The zero value is usable.
type WarmOptions struct {
	// Budget is the memory (entry cost, as the memory tier counts it) the
	// warm start may fill; zero means half the memory tier's MaxBytes.
	Budget int64
	// Timeout bounds the whole warm start; zero means 10 s.
	Timeout time.Duration
	// Rate bounds the disk reads in bytes per second; zero means 50 MiB/s,
	// negative means unlimited.
	Rate int64
}

// WarmResult is what a warm start did.
type WarmResult struct {
	Objects  int64         // entries copied into memory
	Bytes    int64         // their memory cost
	Duration time.Duration // from start to stop
	// Stopped is why it stopped: "done" (every candidate read: the disk
	// objects whose body sizes fit the budget), "budget" (their memory
	// cost, headers included, reached it first),
	// "timeout", "closed" (the cache or the disk tier was closed),
	// "no_disk" or "already" (see WarmStart).
	Stopped string
}

// warmState is the cache's running warm start, stopped by Close.
type warmState struct {
	stop chan struct{}
	done chan struct{}
}

// WarmStart starts copying the disk tier's most recently used objects
// that fit the memory tier (Vary markers included) into memory, hottest
// first, and returns at once; the channel receives the result when it
// stops. Requests are served meanwhile as usual. Each body is verified
// against its checksums, as every disk read is. A copy never replaces an
// entry already in memory (a fill stored meanwhile is newer), and one
// that a recorded invalidation or purge covers is dropped, whether the
// purge came before or after its disk read (the gate of any promotion:
// see promote), so a purge during warm-up is never undone. Reads
// leave the disk tier's recency order alone. Close stops it. A cache warms
// once: a later call (or one after Close) returns Stopped "already".
func (c *Cache) WarmStart(opts WarmOptions) <-chan WarmResult {
	out := make(chan WarmResult, 1)
	c.attach.Lock()
	if c.warm != nil || c.warmClosed {
		c.attach.Unlock()
		out <- WarmResult{Stopped: "already"}
		return out
	}
	w := &warmState{stop: make(chan struct{}), done: make(chan struct{})}
	c.warm = w
	c.attach.Unlock()
	go func() {
		defer close(w.done)
		res := c.warmUp(opts, w.stop)
		c.m.warmSeconds.Set(res.Duration.Seconds())
		c.log.Info("warm start finished", "objects", res.Objects, "bytes", res.Bytes,
			"duration", res.Duration, "stopped", res.Stopped)
		out <- res
	}()
	return out
}

// stopWarm stops a running warm start and waits for it.
func (c *Cache) stopWarm() {
	c.attach.Lock()
	w := c.warm
	c.warmClosed = true
	c.attach.Unlock()
	if w != nil {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		<-w.done
	}
}

func (c *Cache) warmUp(opts WarmOptions, stop <-chan struct{}) (res WarmResult) {
	if opts.Budget <= 0 {
		opts.Budget = c.mem.c.MaxCost() / 2
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Rate == 0 {
		opts.Rate = 50 << 20
	}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	d := c.diskStore()
	if d == nil {
		res.Stopped = "no_disk"
		return res
	}
	deadline := time.NewTimer(opts.Timeout)
	defer deadline.Stop()
	// Every entry costs at least its key and 64 bytes: the count bound
	// keeps a store full of Vary markers (size 0) from being listed whole.
	keys := d.Hottest(opts.Budget, c.mem.maxObject, int(min(opts.Budget/64+1, 1<<22)))
	var read int64 // body bytes read, for the rate
	res.Stopped = "done"
	batch := make([]warmItem, warmReaders)
	for len(keys) > 0 {
		select {
		case <-stop:
			res.Stopped = "closed"
			return res
		case <-deadline.C:
			res.Stopped = "timeout"
			return res
		default:
		}
		// Read a few objects at once: a small read is mostly open, fstat
		// and close, which overlap; they are copied in order.
		n := min(len(keys), warmReaders)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch[i].e, batch[i].n, batch[i].err = c.warmRead(d, keys[i])
			}()
		}
		wg.Wait()
		keys = keys[n:]
		for _, it := range batch[:n] {
			if stopped := c.warmCopy(it, &res, &read, opts, start, stop, deadline.C); stopped != "" {
				res.Stopped = stopped
				return res
			}
		}
	}
	return res
}

// warmReaders is how many disk objects a warm start reads at once.
const warmReaders = 4

// warmItem is one object a warm start read.
type warmItem struct {
	e   *Entry
	n   int64
	err error
}

// warmCopy copies what a warm start read into memory, counts it in res
// and paces the reads; it returns why the warm start must stop, or "".
func (c *Cache) warmCopy(it warmItem, res *WarmResult, read *int64, opts WarmOptions, start time.Time, stop <-chan struct{}, deadline <-chan time.Time) string {
	if errors.Is(it.err, storage.ErrClosed) {
		return "closed"
	}
	*read += it.n
	e := it.e
	if e != nil {
		cost := e.cost()
		if res.Bytes+cost > opts.Budget {
			return "budget"
		}
		if c.beforePromote != nil {
			c.beforePromote()
		}
		took := false
		c.unlessInvalidated(e, 0, func() { took = c.mem.setIfAbsent(e) })
		if took {
			res.Objects++
			res.Bytes += cost
			c.m.warmObjects.Inc()
			c.m.warmBytes.Add(float64(cost))
		}
	}
	if opts.Rate <= 0 {
		return ""
	}
	// Pace: no faster than Rate on average since the start.
	wait := time.Duration(float64(*read)/float64(opts.Rate)*float64(time.Second)) - time.Since(start)
	if wait <= 0 {
		return ""
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return ""
	case <-stop:
		return "closed"
	case <-deadline:
		return "timeout"
	}
}

// warmRead reads the disk object under key into an entry as the memory
// tier would hold it (a marker under its primary key), verified, and the
// body bytes it read. A nil entry with a nil error means the key is gone,
// unreadable or not for memory.
func (c *Cache) warmRead(d *storage.Store, key string) (*Entry, int64, error) {
	primary := key
	if i := strings.IndexByte(key, 0); i >= 0 {
		primary = key[:i]
	}
	obj, err := d.Peek(key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		return nil, 0, err
	}
	e, err := decodeEntry(obj.Meta.Header)
	if err != nil {
		obj.Close()
		return nil, 0, nil // a client's read drops it
	}
	e.Key, e.Primary = key, primary
	e.withCodedKeys()
	if e.Marker {
		obj.Close()
		if key != markerKey(primary) {
			return nil, 0, nil
		}
		e.Key = primary
		return e, 0, nil
	}
	size := obj.Size()
	body, err := obj.ReadAll()
	obj.Close()
	if err != nil {
		// A failed checksum: the store has dropped the object.
		c.log.Warn("warm start: disk object failed verification", "key", key, "err", err)
		return nil, size, nil
	}
	e.Body = body
	return e, size, nil
}
