// Package sizemix parses byte sizes ("10KiB") and weighted size mixes
// ("1KiB:70,10KiB:25,100KiB:5") and picks an object's size from its id, so
// that the origin simulator and the load generator agree on every object's
// size without talking to each other.
package sizemix

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("sizemix: bad syntax")

var units = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// ParseSize parses a byte count: a non-negative integer with an optional,
// case-insensitive unit. KiB, MiB, GiB and the bare K, M, G are powers of
// 1024; kB, MB, GB are powers of 1000; B or no unit means bytes.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: size %q", ErrSyntax, s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: size %q is too large", ErrSyntax, s)
	}
	return n * mult, nil
}

// FormatSize prints n with the largest binary unit that divides it exactly
// (1024 → "1KiB", 1500 → "1500B").
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// Entry is one term of a Mix: sizes in [Min, Max] (Min == Max for a single
// size) chosen with relative weight Weight.
type Entry struct {
	Min, Max int64
	Weight   uint64
}

// Mix is a weighted set of sizes. The zero Mix is empty: Pick reports false.
type Mix struct {
	entries []Entry
	total   uint64
}

// Parse reads a comma-separated mix of SIZE[:WEIGHT] or MIN-MAX[:WEIGHT]
// terms, e.g. "1KiB:70,10KiB:25,100KiB:5" or "1KiB-100KiB". A missing weight
// is 1. An empty string gives the empty Mix.
func Parse(s string) (Mix, error) {
	var m Mix
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for term := range strings.SplitSeq(s, ",") {
		sz, w, hasW := strings.Cut(strings.TrimSpace(term), ":")
		e := Entry{Weight: 1}
		if hasW {
			n, err := strconv.ParseUint(strings.TrimSpace(w), 10, 32)
			if err != nil || n == 0 {
				return Mix{}, fmt.Errorf("%w: weight %q in %q (want a positive integer)", ErrSyntax, w, term)
			}
			e.Weight = n
		}
		lo, hi, isRange := strings.Cut(sz, "-")
		var err error
		if e.Min, err = ParseSize(lo); err != nil {
			return Mix{}, err
		}
		e.Max = e.Min
		if isRange {
			if e.Max, err = ParseSize(hi); err != nil {
				return Mix{}, err
			}
			if e.Max < e.Min {
				return Mix{}, fmt.Errorf("%w: range %q ends below its start", ErrSyntax, sz)
			}
		}
		m.entries = append(m.entries, e)
		m.total += e.Weight
	}
	return m, nil
}

// Entries returns a copy of the mix's terms.
func (m Mix) Entries() []Entry { return append([]Entry(nil), m.entries...) }

// Max returns the largest size the mix can pick (0 for the empty Mix).
func (m Mix) Max() int64 {
	var hi int64
	for _, e := range m.entries {
		hi = max(hi, e.Max)
	}
	return hi
}

// Pick returns the size of object id: a pure function of id and the mix, so
// every process holding the same mix agrees. ok is false for the empty Mix.
func (m Mix) Pick(id string) (size int64, ok bool) {
	if m.total == 0 {
		return 0, false
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	x := mix64(h.Sum64())
	r := x % m.total
	for _, e := range m.entries {
		if r < e.Weight {
			if e.Max == e.Min {
				return e.Min, true
			}
			span := uint64(e.Max-e.Min) + 1
			return e.Min + int64(mix64(x^0x9e3779b97f4a7c15)%span), true
		}
		r -= e.Weight
	}
	panic("unreachable")
}

// String formats the mix in the syntax Parse reads.
func (m Mix) String() string {
	var b strings.Builder
	for i, e := range m.entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(FormatSize(e.Min))
		if e.Max != e.Min {
			b.WriteString("-" + FormatSize(e.Max))
		}
		fmt.Fprintf(&b, ":%d", e.Weight)
	}
	return b.String()
}

// mix64 is the splitmix64 finalizer; it spreads FNV's weak low bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
