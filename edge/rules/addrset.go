package rules

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
)

// AddrSet is a set of IP address ranges, from CIDR prefixes and single
// addresses, IPv4 and IPv6. Contains answers in O(log n) over the merged
// ranges whatever their number, so a list of thousands of ranges costs a
// binary search of integers, not a scan. IPv4-mapped IPv6 addresses are
// taken as the IPv4 address. It is immutable; the zero AddrSet is empty.
type AddrSet struct {
	v4 []addrRange // sorted, disjoint, not adjacent
	v6 []addrRange
}

// addrRange is an inclusive range of addresses of one family, as 128-bit
// integers (IPv4 in the low 32 bits).
type addrRange struct{ lo, hi u128 }

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

func toU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// ParseAddrSet builds a set from entries such as "10.0.0.0/8",
// "2001:db8::/32" or "192.0.2.7". The first entry that is neither a prefix
// nor an address is an error naming its index.
func ParseAddrSet(entries []string) (*AddrSet, error) {
	prefixes := make([]netip.Prefix, 0, len(entries))
	for i, s := range entries {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		prefixes = append(prefixes, p)
	}
	return NewAddrSet(prefixes), nil
}

// parsePrefix parses a CIDR prefix or a single address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, aerr := netip.ParseAddr(s)
	if aerr != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// NewAddrSet builds a set from prefixes (overlapping ones are merged).
func NewAddrSet(prefixes []netip.Prefix) *AddrSet {
	s := &AddrSet{}
	for _, p := range prefixes {
		p = p.Masked()
		r := addrRange{lo: toU128(p.Addr()), hi: toU128(lastAddr(p))}
		if p.Addr().Is4() {
			s.v4 = append(s.v4, r)
		} else {
			s.v6 = append(s.v6, r)
		}
	}
	s.v4, s.v6 = mergeRanges(s.v4), mergeRanges(s.v6)
	return s
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mergeRanges sorts ranges and merges overlapping and adjacent ones.
func mergeRanges(rs []addrRange) []addrRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.cmp(b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		next, ok := last.hi.next()
		if r.lo.cmp(last.hi) <= 0 || ok && r.lo == next {
			if r.hi.cmp(last.hi) > 0 {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// Contains reports whether a is in the set. The zero Addr is in no set.
func (s *AddrSet) Contains(a netip.Addr) bool {
	if s == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	rs := s.v6
	if a.Is4() {
		rs = s.v4
	}
	x := toU128(a)
	// Find the last range starting at or before x: the only one that can
	// hold it.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].lo.cmp(x) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && rs[lo-1].hi.cmp(x) >= 0
}

// Len is the number of disjoint ranges the set holds.
func (s *AddrSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.v4) + len(s.v6)
}
