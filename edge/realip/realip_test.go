package realip_test

import (
	"net/netip"
	"testing"

	"github.com/edged-proxy/edged/edge/realip"
	"github.com/edged-proxy/edged/edge/rules"
)

func trusted(t testing.TB, cidrs ...string) *rules.AddrSet {
	t.Helper()
	s, err := rules.ParseAddrSet(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClientXForwardedFor(t *testing.T) {
	set := trusted(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	for _, tc := range []struct {
		name  string
		peer  string
		lines []string
		want  string
	}{
		{"untrusted peer: spoofed field ignored", "198.51.100.9", []string{"1.2.3.4"}, "198.51.100.9"},
		{"untrusted peer, no field", "198.51.100.9", nil, "198.51.100.9"},
		{"trusted peer, no field", "10.0.0.1", nil, "10.0.0.1"},
		{"trusted peer, empty field", "10.0.0.1", []string{""}, "10.0.0.1"},
		{"one hop", "10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"spoof left of the client is not reached", "10.0.0.1", []string{"1.2.3.4, 203.0.113.7"}, "203.0.113.7"},
		{"several trusted hops", "10.0.0.1", []string{"1.2.3.4, 203.0.113.7, 10.1.1.1, 10.2.2.2"}, "203.0.113.7"},
		{"hops over several lines", "10.0.0.1", []string{"1.2.3.4, 203.0.113.7", "10.1.1.1", "10.2.2.2"}, "203.0.113.7"},
		{"all trusted: the leftmost", "10.0.0.1", []string{"10.9.9.9, 10.1.1.1", "10.2.2.2"}, "10.9.9.9"},
		{"malformed entry stops at the hop that passed it", "10.0.0.1", []string{"203.0.113.7, bogus, 10.3.3.3"}, "10.3.3.3"},
		{"malformed rightmost: the peer", "10.0.0.1", []string{"203.0.113.7, not-an-ip"}, "10.0.0.1"},
		{"unknown is not an address", "10.0.0.1", []string{"unknown"}, "10.0.0.1"},
		{"empty elements skipped", "10.0.0.1", []string{" , 203.0.113.7 ,, "}, "203.0.113.7"},
		{"IPv4 with port", "10.0.0.1", []string{"203.0.113.7:5123"}, "203.0.113.7"},
		{"bracketed IPv6 with port", "10.0.0.1", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"bare IPv6", "10.0.0.1", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 zone rejected", "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"bracketed IPv4 rejected", "10.0.0.1", []string{"[203.0.113.7]"}, "10.0.0.1"},
		{"bad port rejected", "10.0.0.1", []string{"203.0.113.7:http"}, "10.0.0.1"},
		{"IPv4-mapped peer is the IPv4 one", "::ffff:10.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped entry unmapped", "10.0.0.1", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"trusted IPv6 peer", "2001:db8:ffff::1", []string{"203.0.113.7"}, "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := realip.Resolver{Trusted: set}
			got := r.Client(netip.MustParseAddr(tc.peer), tc.lines)
			if want := netip.MustParseAddr(tc.want); got != want {
				t.Errorf("Client(%s, %q) = %v, want %v", tc.peer, tc.lines, got, want)
			}
		})
	}
}

func TestClientForwarded(t *testing.T) {
	set := trusted(t, "10.0.0.0/8", "2001:db8:ffff::/48")
	for _, tc := range []struct {
		name  string
		peer  string
		lines []string
		want  string
	}{
		{"untrusted peer: spoofed field ignored", "198.51.100.9", []string{"for=1.2.3.4"}, "198.51.100.9"},
		{"one hop", "10.0.0.1", []string{"for=203.0.113.7;proto=https;by=10.0.0.1"}, "203.0.113.7"},
		{"case-insensitive name", "10.0.0.1", []string{"For=203.0.113.7"}, "203.0.113.7"},
		{"quoted IPv6 with port", "10.0.0.1", []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"quoted IPv4 with port", "10.0.0.1", []string{`for="192.0.2.43:47011"`}, "192.0.2.43"},
		{"unquoted IPv6 is a syntax error", "10.0.0.1", []string{`for=[2001:db8::1]`}, "10.0.0.1"},
		{"several hops", "10.0.0.1", []string{`for=1.2.3.4, for=192.0.2.43, for="[2001:db8:ffff::9]";proto=http`}, "192.0.2.43"},
		{"hops over lines", "10.0.0.1", []string{`for=1.2.3.4, for=192.0.2.43`, `for=10.5.5.5`}, "192.0.2.43"},
		{"all trusted: the leftmost", "10.0.0.1", []string{`for=10.9.9.9, for=10.5.5.5`}, "10.9.9.9"},
		{"unknown stops the walk", "10.0.0.1", []string{`for=192.0.2.43, for=unknown, for=10.5.5.5`}, "10.5.5.5"},
		{"obfuscated stops the walk", "10.0.0.1", []string{`for=192.0.2.43, for=_hidden`}, "10.0.0.1"},
		{"obfuscated port names no address", "10.0.0.1", []string{`for="192.0.2.43:_p1"`}, "10.0.0.1"},
		{"element without for stops", "10.0.0.1", []string{`for=192.0.2.43, proto=https`}, "10.0.0.1"},
		{"two for in one element", "10.0.0.1", []string{`for=192.0.2.43;for=192.0.2.44`}, "10.0.0.1"},
		{"comma inside quotes", "10.0.0.1", []string{`for=192.0.2.43;host="a,b", for=10.5.5.5`}, "192.0.2.43"},
		{"quoted pair", "10.0.0.1", []string{`for="192.0.2.4\3"`}, "192.0.2.43"},
		{"unterminated quote: the line is one bad element", "10.0.0.1", []string{`for="1.2.3.4, for=192.0.2.43`}, "10.0.0.1"},
		{"garbage", "10.0.0.1", []string{`;;==`}, "10.0.0.1"},
		{"empty elements skipped", "10.0.0.1", []string{`for=192.0.2.43, ,`}, "192.0.2.43"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := realip.Resolver{Trusted: set, Forwarded: true}
			got := r.Client(netip.MustParseAddr(tc.peer), tc.lines)
			if want := netip.MustParseAddr(tc.want); got != want {
				t.Errorf("Client(%s, %q) = %v, want %v", tc.peer, tc.lines, got, want)
			}
		})
	}
}

func TestZeroResolverTrustsNoOne(t *testing.T) {
	var r realip.Resolver
	peer := netip.MustParseAddr("10.0.0.1")
	if got := r.Client(peer, []string{"203.0.113.7"}); got != peer {
		t.Errorf("zero Resolver: got %v, want the peer %v", got, peer)
	}
}

func TestClientAllocatesNothing(t *testing.T) {
	r := realip.Resolver{Trusted: trusted(t, "10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.1")
	lines := []string{"1.2.3.4, 203.0.113.7, 10.1.1.1"}
	fwd := realip.Resolver{Trusted: r.Trusted, Forwarded: true}
	flines := []string{`for=1.2.3.4, for="[2001:db8::1]:80", for=10.1.1.1;proto=https`}
	if n := testing.AllocsPerRun(100, func() { r.Client(peer, lines); fwd.Client(peer, flines) }); n != 0 {
		t.Errorf("Client allocates %v times, want 0", n)
	}
}

func BenchmarkClient(b *testing.B) {
	set := trusted(b, "10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.1")
	for _, bc := range []struct {
		name  string
		r     realip.Resolver
		lines []string
	}{
		{"xff-3hops", realip.Resolver{Trusted: set}, []string{"1.2.3.4, 203.0.113.7, 10.1.1.1"}},
		{"forwarded-3hops", realip.Resolver{Trusted: set, Forwarded: true}, []string{`for=1.2.3.4, for="[2001:db8::1]:80", for=10.1.1.1;proto=https`}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.r.Client(peer, bc.lines)
			}
		})
	}
}
