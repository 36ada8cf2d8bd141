package load

import (
	"math"
	"math/bits"
	"time"
)

// subBits is log2 of the number of sub-buckets per power of two. With 128
// sub-buckets a bucket is at most 1/128 of its lower bound wide, and the
// midpoint reported for it is within 0.4% of any value in it.
const subBits = 7

const (
	subCount   = 1 << subBits
	numBuckets = subCount + (64-subBits)*subCount
)

// Histogram is a log-linear histogram of non-negative int64 values
// (nanoseconds here): values below 128 are exact, larger ones fall into one of
// 128 equal buckets per power of two. Quantiles have a relative error below
// 1%. The zero Histogram is empty and ready; it is not safe for concurrent
// use: give each goroutine its own and Merge them.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // ≥ subBits
	shift := e - subBits
	return subCount + shift*subCount + int((uint64(v)>>shift)&(subCount-1))
}

// bounds returns the smallest value of bucket i and its width.
func bounds(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	shift := (i - subCount) / subCount
	m := int64((i-subCount)%subCount) + subCount
	return m << shift, 1 << shift
}

// Record adds v; negative values count as 0.
func (h *Histogram) Record(v int64) {
	v = max(v, 0)
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
}

// RecordDuration adds d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds all of o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max return the exact extremes (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the exact mean (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q in [0,1]: the midpoint of the
// bucket holding the ceil(q·n)-th smallest value, clamped to [Min, Max]. It
// returns 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, w := bounds(i)
			return min(max(lo+(w-1)/2, h.min), h.max)
		}
	}
	return h.max
}
