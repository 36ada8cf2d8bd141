package realip_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/edged-proxy/edged/edge/realip"
)

// FuzzClient holds both readings to two references: on any text, the
// X-Forwarded-For walk equals a naive one over the lines joined and split
// at every comma, neither panics, and an untrusted peer is always the
// answer; on a chain of addresses written both ways (bytes of addrs, 5 per
// hop: a family bit, 4 address bytes), both fields give the model's
// answer.
func FuzzClient(f *testing.F) {
	f.Add("10.0.0.1", "1.2.3.4, 203.0.113.7", "10.1.1.1", []byte{0, 203, 0, 113, 7, 0, 10, 1, 1, 1})
	f.Add("10.0.0.1", `for=1.2.3.4;proto=https, for="[2001:db8::1]:80"`, "for=unknown", []byte{1, 32, 1, 13, 184, 0, 10, 9, 9, 9})
	f.Add("198.51.100.1", "10.0.0.1", `for="1.2.3.4`, []byte{})
	f.Add("10.0.0.1", ` , ,`, `for=_x;by="\\"`, []byte{0, 10, 0, 0, 1, 0, 10, 0, 0, 2})
	set := trusted(f, "10.0.0.0/8", "2001:db8:ffff::/48")
	f.Fuzz(func(t *testing.T, peerText, l1, l2 string, addrs []byte) {
		peer, err := netip.ParseAddr(peerText)
		if err != nil || peer.Zone() != "" {
			return
		}
		peer = peer.Unmap()
		lines := []string{l1, l2}
		x := realip.Resolver{Trusted: set}
		fw := realip.Resolver{Trusted: set, Forwarded: true}
		gotX, gotF := x.Client(peer, lines), fw.Client(peer, lines)
		if !set.Contains(peer) && (gotX != peer || gotF != peer) {
			t.Fatalf("untrusted peer %v: got %v (X-Forwarded-For), %v (Forwarded)", peer, gotX, gotF)
		}
		if want := naiveXFF(set, peer, lines); gotX != want {
			t.Fatalf("X-Forwarded-For %q from %v: got %v, naive walk %v", lines, peer, gotX, want)
		}

		// The chain, written by well-behaved proxies.
		var chain []netip.Addr
		for i := 0; i+5 <= len(addrs) && len(chain) < 8; i += 5 {
			if addrs[i]&1 == 0 {
				chain = append(chain, netip.AddrFrom4([4]byte(addrs[i+1:i+5])))
			} else { // an IPv6 address in 2001:db8:ffff::/48 or 2001:db8:cafe::/48
				var b [16]byte
				copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0xca, 0xfe})
				if addrs[i]&2 != 0 {
					b[4], b[5] = 0xff, 0xff
				}
				copy(b[12:], addrs[i+1:i+5])
				chain = append(chain, netip.AddrFrom16(b))
			}
		}
		want := peer
		for i := len(chain) - 1; i >= 0 && set.Contains(want); i-- {
			want = chain[i]
		}
		var xff, fwd []string
		for i, a := range chain {
			port := fmt.Sprintf(":%d", 1000+i)
			if i%2 == 0 {
				port = ""
			}
			xff = append(xff, netip.AddrPortFrom(a, 0).Addr().String())
			switch {
			case a.Is6():
				fwd = append(fwd, fmt.Sprintf(`for="[%s]%s";proto=https`, a, port))
			case port != "":
				fwd = append(fwd, fmt.Sprintf(`For="%s%s"`, a, port))
			default:
				fwd = append(fwd, "for="+a.String())
			}
		}
		if got := x.Client(peer, []string{strings.Join(xff, ", ")}); got != want {
			t.Fatalf("X-Forwarded-For %q from %v: got %v, want %v", xff, peer, got, want)
		}
		if got := fw.Client(peer, []string{strings.Join(fwd, ", ")}); got != want {
			t.Fatalf("Forwarded %q from %v: got %v, want %v", fwd, peer, got, want)
		}
	})
}

// naiveXFF is the reference walk: every line joined, split at commas,
// blank items dropped, from the right.
func naiveXFF(set realip.Trusted, peer netip.Addr, lines []string) netip.Addr {
	var items []string
	for _, it := range strings.Split(strings.Join(lines, ","), ",") {
		if it = strings.Trim(it, " \t"); it != "" {
			items = append(items, it)
		}
	}
	cur := peer
	for i := len(items) - 1; i >= 0 && set.Contains(cur); i-- {
		a, ok := naiveNode(items[i])
		if !ok {
			break
		}
		cur = a
	}
	return cur
}

// naiveNode parses an item with the standard library's forms: an
// address, or address and port (IPv6 in brackets).
func naiveNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && len(s) > 0 && s[len(s)-1] != ':' {
		_, port, _ := strings.Cut(s[strings.LastIndexByte(s, ']')+1:], ":")
		if ap.Addr().Zone() == "" && len(port) <= 5 && !strings.HasPrefix(port, "+") && (s[0] == '[') == ap.Addr().Is6() {
			return ap.Addr().Unmap(), true
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
