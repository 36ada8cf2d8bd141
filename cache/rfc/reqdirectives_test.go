package rfc

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"
)

func TestRequestDirectivesParse(t *testing.T) {
	const s = time.Second
	inf := time.Duration(math.MaxInt64)
	tests := []struct {
		name string
		h    http.Header
		want RequestDirectives
	}{
		{"none", http.Header{}, RequestDirectives{}},
		{"nil header", nil, RequestDirectives{}},
		{"no-cache", polHeader("Cache-Control", "no-cache"), RequestDirectives{NoCache: true}},
		{"no-store", polHeader("Cache-Control", "no-store"), RequestDirectives{NoStore: true}},
		{"only-if-cached", polHeader("Cache-Control", "only-if-cached"), RequestDirectives{OnlyIfCached: true}},
		{"booleans with arguments", polHeader("Cache-Control", `no-cache="x", no-store=1, only-if-cached=y`), RequestDirectives{NoCache: true, NoStore: true, OnlyIfCached: true}},
		{"upper case and spacing", polHeader("Cache-Control", " ,NO-CACHE ,\tMax-Age = 5,"), RequestDirectives{NoCache: true, MaxAge: 5 * s, HasMaxAge: true}},
		{"max-age", polHeader("Cache-Control", "max-age=30"), RequestDirectives{MaxAge: 30 * s, HasMaxAge: true}},
		{"max-age=0", polHeader("Cache-Control", "max-age=0"), RequestDirectives{HasMaxAge: true}},
		{"quoted max-age", polHeader("Cache-Control", `max-age="30"`), RequestDirectives{MaxAge: 30 * s, HasMaxAge: true}},
		{"invalid max-age is 0", polHeader("Cache-Control", "max-age=soon"), RequestDirectives{HasMaxAge: true}},
		{"max-age without value is 0", polHeader("Cache-Control", "max-age"), RequestDirectives{HasMaxAge: true}},
		{"duplicate max-age keeps smallest", polHeader("Cache-Control", "max-age=30, max-age=10", "Cache-Control", "max-age=20"), RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}},
		{"huge max-age clamped", polHeader("Cache-Control", "max-age=999999999999"), RequestDirectives{MaxAge: math.MaxInt32 * s, HasMaxAge: true}},
		{"max-stale without value", polHeader("Cache-Control", "max-stale"), RequestDirectives{MaxStale: inf, HasMaxStale: true}},
		{"max-stale value", polHeader("Cache-Control", "max-stale=60"), RequestDirectives{MaxStale: 60 * s, HasMaxStale: true}},
		{"max-stale duplicates keep smallest", polHeader("Cache-Control", "max-stale, max-stale=60, max-stale=90"), RequestDirectives{MaxStale: 60 * s, HasMaxStale: true}},
		{"invalid max-stale ignored", polHeader("Cache-Control", "max-stale=-1, max-stale=, max-stale=1 2"), RequestDirectives{}},
		{"min-fresh", polHeader("Cache-Control", "min-fresh=10"), RequestDirectives{MinFresh: 10 * s, HasMinFresh: true}},
		{"min-fresh duplicates keep largest", polHeader("Cache-Control", "min-fresh=10, min-fresh=40, min-fresh=20"), RequestDirectives{MinFresh: 40 * s, HasMinFresh: true}},
		{"invalid min-fresh ignored", polHeader("Cache-Control", "min-fresh=x, min-fresh"), RequestDirectives{}},
		{"unknown directives ignored", polHeader("Cache-Control", `no-transform, foo=bar, stale-if-error=5, x="a,no-store"`), RequestDirectives{}},
		{"second line", polHeader("Cache-Control", "max-age=5", "Cache-Control", "no-store"), RequestDirectives{NoStore: true, MaxAge: 5 * s, HasMaxAge: true}},
		{"Pragma no-cache", polHeader("Pragma", "no-cache"), RequestDirectives{NoCache: true}},
		{"Pragma list, any case", polHeader("Pragma", "foo", "Pragma", "x=1, No-Cache"), RequestDirectives{NoCache: true}},
		{"Pragma other", polHeader("Pragma", "no-cache-please"), RequestDirectives{}},
		{"Pragma ignored with Cache-Control", polHeader("Pragma", "no-cache", "Cache-Control", "max-age=5"), RequestDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{"Pragma ignored with empty Cache-Control", polHeader("Pragma", "no-cache", "Cache-Control", ""), RequestDirectives{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRequestDirectives(tt.h); got != tt.want {
				t.Errorf("ParseRequestDirectives = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRequestCorrects_MultipleFieldLines(t *testing.T) {
	h := polHeader("Cache-Control", "max-age=5", "Cache-Control", "no-store")
	pq, err := cacheobject.ParseRequestCacheControl(h.Get("Cache-Control"))
	if err != nil || pq.NoStore {
		t.Errorf("pquerna no longer ignores a second line (%+v, %v); revisit", pq, err)
	}
	if got := ParseRequestDirectives(h); !got.NoStore || got.MaxAge != 5*time.Second {
		t.Errorf("ParseRequestDirectives = %+v, want no-store and max-age=5", got)
	}
}

func TestRequestCorrects_MalformedDirective(t *testing.T) {
	h := polHeader("Cache-Control", "max-age, no-cache")
	if _, err := cacheobject.ParseRequestCacheControl(h.Get("Cache-Control")); err == nil {
		t.Errorf("pquerna no longer fails on a bare max-age; revisit")
	}
	want := RequestDirectives{NoCache: true, HasMaxAge: true}
	if got := ParseRequestDirectives(h); got != want {
		t.Errorf("ParseRequestDirectives = %+v, want %+v", got, want)
	}
}

func TestRequestDirectivesAllows(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name                    string
		cc                      string
		lifetime, age           time.Duration
		mustRevalidate, noCache bool
		want                    bool
	}{
		{"fresh", "", 60 * s, 10 * s, false, false, true},
		{"exactly expired is stale", "", 60 * s, 60 * s, false, false, false},
		{"stale", "", 60 * s, 61 * s, false, false, false},
		{"lifetime 0", "", 0, 0, false, false, false},
		{"response no-cache", "", 60 * s, 0, false, true, false},
		{"request no-cache", "no-cache", 60 * s, 0, false, false, false},
		{"max-age allows", "max-age=30", 60 * s, 30 * s, false, false, true},
		{"max-age refuses", "max-age=30", 60 * s, 31 * s, false, false, false},
		{"max-age=0 refuses any age", "max-age=0", 60 * s, time.Millisecond, false, false, false},
		{"min-fresh allows", "min-fresh=20", 60 * s, 40 * s, false, false, true},
		{"min-fresh refuses", "min-fresh=20", 60 * s, 41 * s, false, false, false},
		{"max-stale allows", "max-stale=30", 60 * s, 90 * s, false, false, true},
		{"max-stale refuses", "max-stale=30", 60 * s, 91 * s, false, false, false},
		{"max-stale unbounded", "max-stale", 60 * s, 1000 * time.Hour, false, false, true},
		{"max-stale with lifetime 0", "max-stale=5", 0, 5 * s, false, false, true},
		{"max-stale vs must-revalidate", "max-stale", 60 * s, 61 * s, true, false, false},
		{"must-revalidate while fresh", "", 60 * s, 10 * s, true, false, true},
		{"max-stale vs response no-cache", "max-stale", 60 * s, 61 * s, false, true, false},
		{"max-stale with max-age", "max-stale, max-age=70", 60 * s, 71 * s, false, false, false},
		{"max-stale with min-fresh", "max-stale, min-fresh=1", 60 * s, 61 * s, false, false, false},
		{"Pragma only", "", 60 * s, 0, false, false, true},
		{"negative age counts as 0", "max-age=0", 60 * s, -5 * s, false, false, true},
		{"negative lifetime counts as 0", "max-stale=10", -60 * s, 5 * s, false, false, true},
		{"huge values", "max-stale", math.MaxInt64, math.MaxInt64, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.cc != "" {
				h.Set("Cache-Control", tt.cc)
			}
			d := ParseRequestDirectives(h)
			if got := d.Allows(tt.lifetime, tt.age, tt.mustRevalidate, tt.noCache); got != tt.want {
				t.Errorf("%+v.Allows(%v, %v, %v, %v) = %v, want %v", d, tt.lifetime, tt.age, tt.mustRevalidate, tt.noCache, got, tt.want)
			}
		})
	}
	pragma := ParseRequestDirectives(polHeader("Pragma", "no-cache"))
	if pragma.Allows(time.Hour, 0, false, false) {
		t.Errorf("Pragma: no-cache allowed a fresh response without validation")
	}
}

func FuzzRequestDirectives(f *testing.F) {
	f.Add("max-age=5, max-stale, min-fresh=1", "no-cache", int64(10e9), int64(3e9), false, false)
	f.Add(`max-stale="1`, "", int64(-1), int64(math.MaxInt64), true, false)
	f.Add("max-age=99999999999999999999,,,=", "x", int64(math.MinInt64), int64(0), false, true)
	f.Fuzz(func(t *testing.T, cc, pragma string, lifetime, age int64, mustRevalidate, noCache bool) {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		h.Set("Pragma", pragma)
		d := ParseRequestDirectives(h)
		if d.MaxAge < 0 || d.MaxStale < 0 || d.MinFresh < 0 {
			t.Fatalf("negative duration: %+v", d)
		}
		if (!d.HasMaxAge && d.MaxAge != 0) || (!d.HasMaxStale && d.MaxStale != 0) || (!d.HasMinFresh && d.MinFresh != 0) {
			t.Fatalf("value without its Has flag: %+v", d)
		}
		ok := d.Allows(time.Duration(lifetime), time.Duration(age), mustRevalidate, noCache)
		if ok && (noCache || d.NoCache) {
			t.Fatalf("no-cache allowed: %+v", d)
		}
	})
}
