package cluster

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// sketchRows is the count-min sketch's depth.
const sketchRows = 4

// sketch counts misses per key approximately: a count-min sketch of
// sketchRows rows of saturating 8-bit counters, halved every window
// increments (TinyLFU's aging), so a key's estimate reflects its recent
// misses. Estimates never undercount within a window; collisions can only
// raise them.
type sketch struct {
	seed      maphash.Seed
	threshold int

	mu     sync.Mutex
	rows   [sketchRows][]uint8
	mask   uint64
	adds   int // increments since the last halving
	window int
}

// newSketch returns a sketch of width the next power of two at or above
// window.
func newSketch(window, threshold int) *sketch {
	width := 1 << bits.Len(uint(window-1))
	s := &sketch{seed: maphash.MakeSeed(), threshold: threshold, mask: uint64(width - 1), window: window}
	for i := range s.rows {
		s.rows[i] = make([]uint8, width)
	}
	return s
}

// add counts one miss of key and returns its estimate, the smallest of its
// counters.
func (s *sketch) add(key string) int {
	h := maphash.String(s.seed, key)
	h1, h2 := h, h>>32|h<<32|1 // double hashing: row i reads h1 + i×h2
	est := uint8(255)
	s.mu.Lock()
	for i := range s.rows {
		c := &s.rows[i][(h1+uint64(i)*h2)&s.mask]
		if *c < 255 {
			*c++
		}
		est = min(est, *c)
	}
	s.adds++
	if s.adds >= s.window {
		s.halve()
	}
	s.mu.Unlock()
	return int(est)
}

// halve divides every counter by two and restarts the window.
func (s *sketch) halve() {
	for _, row := range s.rows {
		for j := range row {
			row[j] >>= 1
		}
	}
	s.adds = 0
}

// Admit records a miss at this node for key (a key a peer owns) and reports
// whether the key is hot here: its estimated misses over the recent
// windows, this one included, reach Config.HotThreshold. The estimate comes
// from a count-min sketch whose counters are halved every
// Config.HotWindow misses, so a key hot long ago must become hot again. It
// allocates nothing.
func (c *Cluster) Admit(key string) bool {
	if c.sketch.add(key) >= c.sketch.threshold {
		c.metrics.admitted.Inc()
		return true
	}
	c.metrics.rejected.Inc()
	return false
}
