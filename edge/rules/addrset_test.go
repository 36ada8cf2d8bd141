package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

func TestAddrSet(t *testing.T) {
	s, err := ParseAddrSet([]string{"10.0.0.0/8", "192.0.2.7", "192.0.2.8/31", "2001:db8::/32", "::ffff:198.51.100.0/120", "10.1.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.0.0.0", true}, {"10.255.255.255", true}, {"11.0.0.0", false}, {"9.255.255.255", false},
		{"192.0.2.6", false}, {"192.0.2.7", true}, {"192.0.2.8", true}, {"192.0.2.9", true}, {"192.0.2.10", false},
		{"198.51.100.200", true}, {"::ffff:198.51.100.1", true}, {"::ffff:10.2.3.4", true},
		{"2001:db8::1", true}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db9::", false},
		{"fe80::1%eth0", false}, {"::", false},
	} {
		if got := s.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// 10.1/16 is inside 10/8; 192.0.2.7 and .8/31 are adjacent: merged.
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4 merged ranges", s.Len())
	}
	if _, err := ParseAddrSet([]string{"10.0.0.0/8", "10.0.0.0/40"}); err == nil || err.Error() != `[1]: invalid address or CIDR "10.0.0.0/40"` {
		t.Errorf("bad entry: %v", err)
	}
	var empty *AddrSet
	if empty.Contains(netip.MustParseAddr("10.0.0.1")) || (&AddrSet{}).Contains(netip.Addr{}) {
		t.Error("an empty set contains something")
	}
}

// FuzzAddrSet holds the merged, binary-searched set to a scan of the
// prefixes it was built from.
func FuzzAddrSet(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 192, 0, 2, 7, 32}, []byte{10, 1, 2, 3})
	f.Add([]byte{0, 0, 0, 0, 0}, []byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, spec, probe []byte) {
		var prefixes []netip.Prefix
		for len(spec) >= 5 && len(prefixes) < 64 {
			a := netip.AddrFrom4([4]byte(spec[:4]))
			prefixes = append(prefixes, netip.PrefixFrom(a, int(spec[4])%33).Masked())
			spec = spec[5:]
		}
		s := NewAddrSet(prefixes)
		for len(probe) >= 4 {
			a := netip.AddrFrom4([4]byte(probe[:4]))
			probe = probe[4:]
			want := false
			for _, p := range prefixes {
				want = want || p.Contains(a)
			}
			if got := s.Contains(a); got != want {
				t.Fatalf("Contains(%s) = %v, want %v (prefixes %v, ranges %v)", a, got, want, prefixes, s.v4)
			}
		}
	})
}

// BenchmarkAddrSet is a lookup in a list of 5,000 ranges.
func BenchmarkAddrSet(b *testing.B) {
	var entries []string
	for i := range 5000 {
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], uint32(i)*65536*7)
		entries = append(entries, fmt.Sprintf("%s/20", netip.AddrFrom4(ip)))
	}
	s, err := ParseAddrSet(entries)
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("203.0.113.9")
	b.ReportAllocs()
	for b.Loop() {
		s.Contains(a)
	}
}
