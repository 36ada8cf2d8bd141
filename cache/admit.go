package cache

import (
	"fmt"
	"sync/atomic"

	"github.com/edged-proxy/edged/internal/sketch"
	"github.com/edged-proxy/edged/storage"
)

// The disk tier's doorkeeper. Most objects of a CDN mix are requested
// once (about three quarters in Akamai's traces): writing each to disk
// costs a file creation and an index commit for an object never read
// again. With admission "second-hit" an object goes to disk on its second
// request within the window; until then it lives in memory only, under
// ristretto's own admission.
//
// Requests are counted where they are cheap to see: every fill (a miss)
// counts, and a memory hit counts when the entry it hits is waiting for
// admission (pendingDisk). The hit that brings the count to two writes the
// entry behind, as the fill would have, so an object hot enough to stay in
// memory reaches disk too and survives eviction and restarts.

// Disk admission policies (Config.DiskAdmission).
const (
	AdmitAlways    = "always"     // every storable fill goes to disk
	AdmitSecondHit = "second-hit" // on the second request within the window
	AdmitOff       = "off"        // nothing new goes to disk
)

// doorkeeper decides which fills the disk tier takes.
type doorkeeper struct {
	mode   string
	larger int64 // bodies larger than this are admitted at once
	seen   *sketch.Sketch
}

func newDoorkeeper(mode string, larger int64, window int) (*doorkeeper, error) {
	switch mode {
	case "":
		mode = AdmitAlways
	case AdmitAlways, AdmitSecondHit, AdmitOff:
	default:
		return nil, fmt.Errorf("cache: DiskAdmission %q is not always, second-hit or off", mode)
	}
	d := &doorkeeper{mode: mode, larger: larger}
	if mode == AdmitSecondHit {
		d.seen = sketch.New(window)
	}
	return d, nil
}

// admitResult is a doorkeeper decision, the label of
// edged_disk_admissions_total.
type admitResult string

const (
	admitted admitResult = "admitted" // second request in the window (or admission "always")
	rejected admitResult = "rejected" // first request, or admission "off"
	large    admitResult = "large"    // larger than the size rule: at once
)

// admit counts one request for key, whose body is size bytes (-1: not
// known yet, a streaming fill), and decides whether it goes to disk.
func (d *doorkeeper) admit(key string, size int64) admitResult {
	switch {
	case d.mode == AdmitAlways:
		return admitted
	case d.mode == AdmitOff:
		return rejected
	case size < 0 || size > d.larger:
		// Refetching a large object costs the most; one of unknown length
		// streams to disk as it arrives and may be large.
		return large
	case d.seen.Add(key) >= 2:
		return admitted
	}
	return rejected
}

// pendingDisk marks a memory entry that the doorkeeper did not admit:
// a later memory hit may admit it. Copies of the entry (refreshes, soft
// purges) share it, so the entry is written once.
type pendingDisk struct {
	key     string   // the key counted: the identity entry's
	start   uint64   // the invalidation sequence of its fill
	main    *Entry   // the identity entry
	alts    []*Entry // its compressed variants, written with it
	written atomic.Bool
}

// admitDisk decides whether the disk tier takes e (filled at sequence
// start, with compressed variants alts) and counts the decision. When it
// does not, e carries a pendingDisk for admitOnHit.
func (c *Cache) admitDisk(e *Entry, size int64, start uint64, alts []*Entry) bool {
	if c.streamTier() == nil {
		return false
	}
	res := c.door.admit(e.Key, size)
	c.m.admissions.WithLabelValues(string(res)).Inc()
	if res == rejected && c.door.mode == AdmitSecondHit {
		p := &pendingDisk{key: e.Key, start: start, main: e, alts: alts}
		e.pending = p
		for _, a := range alts {
			a.pending = p // a hit on a compressed variant counts too
		}
	}
	return res != rejected
}

// admitOnHit counts a memory hit on e and, when e waits for admission and
// this is its second request in the window, writes it (and its compressed
// variants) behind to disk. A hit on an entry already on disk or not
// waiting costs one nil check.
func (c *Cache) admitOnHit(e *Entry) {
	p := e.pending
	if p == nil || p.written.Load() || c.door.seen.Add(p.key) < 2 || !p.written.CompareAndSwap(false, true) {
		return
	}
	d := c.diskStore()
	if d == nil {
		return
	}
	c.m.admissions.WithLabelValues(string(admitted)).Inc()
	main := p.main
	if e.Key == p.key {
		main = e // the current copy: a 304 or a soft purge may have replaced the fill's
	}
	for _, a := range p.alts {
		c.writeBehind(d, a, p.start)
	}
	c.writeBehind(d, main, p.start)
}

// diskStore returns the disk tier's store, or nil.
func (c *Cache) diskStore() *storage.Store {
	for _, t := range c.tierList() {
		if d, ok := t.(diskTier); ok {
			return d.s
		}
	}
	return nil
}
