// Package sketch is a count-min sketch with TinyLFU aging: approximate
// per-key counts over a sliding window of increments, for admission
// decisions (lb/cluster's replica admission, the cache's disk-tier
// doorkeeper). It imports nothing of edged.
package sketch

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// rows is the sketch's depth.
const rows = 4

// Sketch counts keys approximately: a count-min sketch of four rows of
// saturating 8-bit counters, halved every window increments (TinyLFU's
// aging), so a key's estimate reflects its recent increments. Estimates
// never undercount within a window; collisions can only raise them. It is
// safe for concurrent use and allocates nothing per call.
type Sketch struct {
	seed maphash.Seed

	mu     sync.Mutex
	rows   [rows][]uint8
	mask   uint64
	adds   int // increments since the last halving
	window int
}

// New returns a sketch halved every window increments, of width the next
// power of two at or above window. window must be at least 1.
func New(window int) *Sketch {
	window = max(window, 1)
	width := 1 << bits.Len(uint(window-1))
	s := &Sketch{seed: maphash.MakeSeed(), mask: uint64(width - 1), window: window}
	for i := range s.rows {
		s.rows[i] = make([]uint8, width)
	}
	return s
}

// Add counts one occurrence of key and returns its estimate, the smallest
// of its counters, this occurrence included.
func (s *Sketch) Add(key string) int {
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
func (s *Sketch) halve() {
	for _, row := range s.rows {
		for j := range row {
			row[j] >>= 1
		}
	}
	s.adds = 0
}
