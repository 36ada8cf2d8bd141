package load

import (
	"fmt"
	"math/rand/v2"
)

// Keys draws object indexes in [0, N): uniformly, or Zipf-distributed with
// index 0 the most popular. A Keys is not safe for concurrent use; give each
// goroutine its own, seeded differently.
type Keys struct {
	n    uint64
	r    *rand.Rand
	zipf *rand.Zipf
}

// NewKeys returns a Keys over n objects. s == 0 draws uniformly; s > 1 draws
// from a Zipf distribution with exponent s (P(k) ∝ 1/(1+k)^s, as
// math/rand/v2.NewZipf with v = 1). The sequence is a pure function of n, s,
// seed1 and seed2.
func NewKeys(n int, s float64, seed1, seed2 uint64) (*Keys, error) {
	if n < 1 {
		return nil, fmt.Errorf("load: %d keys; need at least 1", n)
	}
	k := &Keys{n: uint64(n), r: rand.New(rand.NewPCG(seed1, seed2))}
	switch {
	case s == 0:
	case s > 1:
		k.zipf = rand.NewZipf(k.r, s, 1, uint64(n-1))
	default:
		return nil, fmt.Errorf("load: Zipf exponent %v; need 0 (uniform) or > 1", s)
	}
	return k, nil
}

// Next returns the next object index.
func (k *Keys) Next() uint64 {
	if k.zipf != nil {
		return k.zipf.Uint64()
	}
	return k.r.Uint64N(k.n)
}
