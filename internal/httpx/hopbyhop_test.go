package httpx

import (
	"net/http"
	"slices"
	"testing"
)

// HopByHop and RemoveHopByHop apply one rule: what the rule calls
// hop-by-hop is what RemoveHopByHop deletes, and nothing else.
func TestHopByHopIsRemoveHopByHopsRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		hop  []string
	}{
		{"fixed fields", http.Header{"Keep-Alive": {"timeout=5"}, "Te": {"trailers"}, "Etag": {`"a"`}},
			[]string{"Keep-Alive", "Te"}},
		{"named by Connection", http.Header{"Connection": {"x-trace , Keep-Alive", "close"}, "X-Trace": {"1"}, "Close": {"?"}, "Via": {"1.1 a"}},
			[]string{"Close", "Connection", "X-Trace"}},
		{"none", http.Header{"Cache-Control": {"max-age=1"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := HopByHop(tc.h["Connection"])
			var hop []string
			for k := range tc.h {
				if rule(k) {
					hop = append(hop, k)
				}
			}
			slices.Sort(hop)
			if !slices.Equal(hop, tc.hop) {
				t.Errorf("rule: %v, want %v", hop, tc.hop)
			}
			left := tc.h.Clone()
			RemoveHopByHop(left)
			for k := range tc.h {
				if _, kept := left[k]; kept == slices.Contains(tc.hop, k) {
					t.Errorf("RemoveHopByHop kept %s: %v", k, kept)
				}
			}
		})
	}
}
