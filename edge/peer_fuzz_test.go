package edge

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPeerFields feeds the fields the peer hop reads from the network
// (the Via of a peer's answer; a peer fetch's Edged-Peer-Proto and
// Edged-Peer-Addr) through dropLastVia and peerIn.
func FuzzPeerFields(f *testing.F) {
	f.Add("1.1 edged", "https", "203.0.113.7:51000")
	f.Add("1.0 a, 1.1 edged", "http", "[2001:db8::1]:443")
	f.Add(",,", "HTTPS", "no-port")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, via, proto, addr string) {
		hd := http.Header{"Via": {via, via}}
		dropLastVia(hd)
		if got := hd["Via"]; len(got) < 1 || got[0] != via {
			t.Fatalf("dropLastVia(%q twice) changed the first line: %q", via, got)
		}

		h := &Handler{}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "192.0.2.1:1"
		r.Header.Set(PeerField, "edged-a")
		r.Header.Set(peerProtoField, proto)
		r.Header.Set(peerAddrField, addr)
		scheme, ok := h.peerIn(httptest.NewRecorder(), r)
		if !ok || scheme != "http" && scheme != "https" {
			t.Fatalf("peerIn: %q %v", scheme, ok)
		}
		if _, _, err := net.SplitHostPort(r.RemoteAddr); err != nil {
			t.Fatalf("RemoteAddr %q after peerIn", r.RemoteAddr)
		}
		for name := range r.Header {
			if strings.HasPrefix(name, "Edged-Peer") {
				t.Fatalf("%s left on the request", name)
			}
		}
	})
}
