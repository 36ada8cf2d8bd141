package load_test

import (
	"net/http"
	"testing"

	"github.com/edged-proxy/edged/loadtest/load"
)

func draw(t *testing.T, n int, s float64, seed uint64, count int) []uint64 {
	t.Helper()
	k, err := load.NewKeys(n, s, seed, 7)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, count)
	for i := range out {
		out[i] = k.Next()
	}
	return out
}

func TestKeysDeterministic(t *testing.T) {
	for _, s := range []float64{0, 1.1} {
		a, b := draw(t, 1000, s, 42, 500), draw(t, 1000, s, 42, 500)
		c := draw(t, 1000, s, 43, 500)
		same := 0
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("s=%v: same seed, draw %d differs (%d vs %d)", s, i, a[i], b[i])
			}
			if a[i] >= 1000 {
				t.Fatalf("s=%v: key %d out of range", s, a[i])
			}
			if a[i] == c[i] {
				same++
			}
		}
		if same == len(a) {
			t.Errorf("s=%v: a different seed gave the same sequence", s)
		}
	}
}

func TestKeysDistribution(t *testing.T) {
	const n, count = 100, 100000
	uni := make([]int, n)
	for _, k := range draw(t, n, 0, 1, count) {
		uni[k]++
	}
	for k, c := range uni {
		if c < count/n*8/10 || c > count/n*12/10 {
			t.Errorf("uniform: key %d drawn %d times, want about %d", k, c, count/n)
		}
	}
	zipf := make([]int, n)
	for _, k := range draw(t, n, 1.2, 1, count) {
		zipf[k]++
	}
	// P(0)/P(1) = 2^1.2 ≈ 2.3 for Zipf with v=1.
	if r := float64(zipf[0]) / float64(zipf[1]); r < 2.0 || r > 2.6 {
		t.Errorf("zipf: key0/key1 = %.2f, want about 2.3", r)
	}
	if zipf[0] <= zipf[10] || zipf[10] <= zipf[90] {
		t.Errorf("zipf counts not decreasing: %d, %d, %d", zipf[0], zipf[10], zipf[90])
	}
	for _, bad := range []float64{0.5, 1, -1} {
		if _, err := load.NewKeys(10, bad, 1, 1); err == nil {
			t.Errorf("NewKeys accepted exponent %v", bad)
		}
	}
	if _, err := load.NewKeys(0, 0, 1, 1); err == nil {
		t.Error("NewKeys accepted 0 keys")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  map[string][]string
		want load.CacheResult
	}{
		{"none", nil, load.Unknown},
		{"cs hit", map[string][]string{"Cache-Status": {"edged; hit; ttl=300"}}, load.Hit},
		{"cs miss", map[string][]string{"Cache-Status": {"edged; fwd=uri-miss; stored"}}, load.Miss},
		{"cs stale revalidated", map[string][]string{"Cache-Status": {"edged; fwd=stale; fwd-status=304"}}, load.Miss},
		{"cs chain last wins", map[string][]string{"Cache-Status": {"origin-cache; hit, edged; fwd=uri-miss"}}, load.Miss},
		{"cs chain hit at edge", map[string][]string{"Cache-Status": {"origin-cache; fwd=uri-miss, edged; hit"}}, load.Hit},
		{"cs two lines", map[string][]string{"Cache-Status": {"a; fwd=miss", "b; hit"}}, load.Hit},
		{"cs quoted name", map[string][]string{"Cache-Status": {`"CDN, Inc; x"; hit`}}, load.Hit},
		{"cs name only", map[string][]string{"Cache-Status": {"edged"}}, load.Miss},
		{"cs hit-like param", map[string][]string{"Cache-Status": {"edged; fwd=uri-miss; detail=hit"}}, load.Miss},
		{"cs empty", map[string][]string{"Cache-Status": {""}}, load.Unknown},
		{"nginx hit", map[string][]string{"X-Cache-Status": {"HIT"}}, load.Hit},
		{"nginx updating", map[string][]string{"X-Cache-Status": {"UPDATING"}}, load.Hit},
		{"nginx expired", map[string][]string{"X-Cache-Status": {"EXPIRED"}}, load.Miss},
		{"nginx revalidated", map[string][]string{"X-Cache-Status": {"REVALIDATED"}}, load.Miss},
		{"x-cache hit", map[string][]string{"X-Cache": {"HIT"}}, load.Hit},
		{"x-cache chain", map[string][]string{"X-Cache": {"HIT, MISS"}}, load.Miss},
		{"x-cache fastly", map[string][]string{"X-Cache": {"MISS, HIT"}}, load.Hit},
		{"varnish hit", map[string][]string{"X-Varnish": {"32773 32771"}}, load.Hit},
		{"varnish miss", map[string][]string{"X-Varnish": {"32770"}}, load.Miss},
		{"cache-status wins", map[string][]string{"Cache-Status": {"edged; hit"}, "X-Varnish": {"5"}}, load.Hit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tc.hdr {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			if got := load.Classify(h); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", tc.hdr, got, tc.want)
			}
		})
	}
}
