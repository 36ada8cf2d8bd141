package load_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edged-proxy/edged/loadtest/load"
)

// exact returns the ceil(q·n)-th smallest value of sorted, the definition
// Histogram.Quantile approximates.
func exact(sorted []int64, q float64) int64 {
	r := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[r-1]
}

func TestHistogramQuantilesWithinErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() int64{
		"uniform-us":  func() int64 { return r.Int64N(1_000_000) },
		"lognormal":   func() int64 { return int64(math.Exp(r.NormFloat64()*2 + 13)) },
		"small-exact": func() int64 { return r.Int64N(100) },
		"huge":        func() int64 { return r.Int64N(math.MaxInt64) },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			var h load.Histogram
			vals := make([]int64, 50000)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				got, want := h.Quantile(q), exact(vals, q)
				if err := math.Abs(float64(got-want)) / math.Max(float64(want), 1); err > 0.01 {
					t.Errorf("q%.3f = %d, exact %d (error %.4f > 1%%)", q, got, want, err)
				}
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
				t.Errorf("min/max/count %d/%d/%d, want %d/%d/%d", h.Min(), h.Max(), h.Count(), vals[0], vals[len(vals)-1], len(vals))
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var parts [4]load.Histogram
	var whole load.Histogram
	var sum float64
	for i := range 20000 {
		v := r.Int64N(50_000_000)
		parts[i%4].Record(v)
		whole.Record(v)
		sum += float64(v)
	}
	var merged load.Histogram
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(&load.Histogram{}) // merging an empty histogram changes nothing
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.Quantile(q) != whole.Quantile(q) {
			t.Errorf("q%v: merged %d, whole %d", q, merged.Quantile(q), whole.Quantile(q))
		}
	}
	if merged.Count() != 20000 || merged.Min() != whole.Min() || merged.Max() != whole.Max() || math.Abs(merged.Mean()-sum/20000) > 1e-3*merged.Mean() {
		t.Errorf("merged count/min/max/mean %d/%d/%d/%f", merged.Count(), merged.Min(), merged.Max(), merged.Mean())
	}
	var empty load.Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram is not all zero")
	}
	empty.Record(-5)
	if empty.Quantile(1) != 0 {
		t.Error("negative values must count as 0")
	}
}
