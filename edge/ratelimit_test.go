package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edged-proxy/edged/edge/rules"
)

// The buckets admit Burst requests at once, then one per 1/Rate, and say
// how long until the next; a refused request is not charged.
func TestLimiterBucket(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("192.0.2.1")
	type step struct {
		at   time.Duration // since t0
		ok   bool
		wait time.Duration
	}
	tests := []struct {
		name  string
		limit rules.RateLimit
		steps []step
	}{
		{"burst then refused", rules.RateLimit{Rate: 1, Burst: 3}, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, time.Second}, {500 * time.Millisecond, false, 500 * time.Millisecond},
			{time.Second, true, 0}, {time.Second, false, time.Second}}},
		{"burst defaults to the rate", rules.RateLimit{Rate: 2}, []step{
			{0, true, 0}, {0, true, 0}, {0, false, 500 * time.Millisecond}}},
		{"slow rate", rules.RateLimit{Rate: 0.5, Burst: 1}, []step{
			{0, true, 0}, {0, false, 2 * time.Second}, {1500 * time.Millisecond, false, 500 * time.Millisecond}, {2 * time.Second, true, 0}}},
		{"idle refills to the burst, no more", rules.RateLimit{Rate: 10, Burst: 2}, []step{
			{0, true, 0}, {0, true, 0}, {0, false, 100 * time.Millisecond}, {time.Hour, true, 0}, {time.Hour, true, 0},
			{time.Hour, false, 100 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(tt.limit)
			for i, s := range tt.steps {
				ok, wait := l.allow(a, t0.Add(s.at), true)
				if ok != s.ok || wait != s.wait {
					t.Errorf("step %d at +%v: (%v, %v), want (%v, %v)", i, s.at, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want int64
	}{{time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {1500 * time.Millisecond, 2}, {3600 * time.Second, 3600}} {
		if got := retryAfter(tt.wait); got != tt.want {
			t.Errorf("retryAfter(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

// IPv6 clients share a bucket per /64; IPv4-mapped addresses are their
// IPv4 address.
func TestLimiterKeys(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	l := newLimiter(rules.RateLimit{Rate: 1, Burst: 1})
	for _, tt := range []struct{ first, second string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"192.0.2.9", "::ffff:192.0.2.9"},
	} {
		if ok, _ := l.allow(netip.MustParseAddr(tt.first), t0, true); !ok {
			t.Fatalf("%s refused at first", tt.first)
		}
		if ok, _ := l.allow(netip.MustParseAddr(tt.second), t0, true); ok {
			t.Errorf("%s has its own bucket; want %s's", tt.second, tt.first)
		}
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:3::1"), t0, true); !ok {
		t.Error("another /64 shares the bucket")
	}
}

// A flood of distinct addresses keeps the table at its size, and the
// client that was limited stays limited: the buckets forgotten first are
// the fullest, and the flood's are fuller than its.
func TestLimiterBoundedUnderFlood(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	for _, max := range []int{0, 1, 1000, 1024, 5000} {
		l := newLimiter(rules.RateLimit{Rate: 1, Burst: 5, MaxClients: max})
		want := max
		if want == 0 {
			want = defaultMaxClients
		}
		capacity := l.capacity()
		if capacity > want && capacity != limiterShards*limiterWays {
			t.Errorf("MaxClients %d: capacity %d", max, capacity)
		}
		heavy := netip.MustParseAddr("198.51.100.7")
		for range 5 {
			l.allow(heavy, t0, true)
		}
		for i := range 200_000 {
			b := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
			if ok, _ := l.allow(netip.AddrFrom4(b), t0, true); !ok {
				t.Fatalf("MaxClients %d: new address %v refused", max, netip.AddrFrom4(b))
			}
		}
		// Every set is all but surely full: 200,000 addresses over at
		// most 8,192 sets of 8 is 24 a set on average.
		if n := l.clients(); n > capacity || n < capacity*99/100 {
			t.Errorf("MaxClients %d: %d clients tracked, want the capacity %d (at most, and nearly)", max, n, capacity)
		}
		if ok, _ := l.allow(heavy, t0, true); ok {
			t.Errorf("MaxClients %d: the limited client was forgotten in the flood", max)
		}
	}
}

// The limit's cost for a client under it: the target is ≤ 100 ns and no
// allocation.
func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(rules.RateLimit{Rate: 1e9, Burst: 1e6})
	now := time.Unix(1e9, 0)
	b.Run("one client", func(b *testing.B) {
		a := clientAddr("192.0.2.1")
		b.ReportAllocs()
		for b.Loop() {
			if ok, _ := l.allow(a, now, true); !ok {
				b.Fatal("refused")
			}
			now = now.Add(time.Microsecond)
		}
	})
	b.Run("site limit as a request pays it", func(b *testing.B) {
		// What limitRate and the fast path do for a site with one limit:
		// parse Session.ClientIP, find the limits that apply, charge.
		limits := []rateLimit{{index: -1, lim: l}}
		var res rules.Result
		b.ReportAllocs()
		for b.Loop() {
			if lim, _ := overLimit(limits, clientAddr("192.0.2.1"), &res, now); lim != nil {
				b.Fatal("refused")
			}
			now = now.Add(time.Microsecond)
		}
	})
	b.Run("parse and allow, 4096 clients, parallel", func(b *testing.B) {
		ips := make([]string, 4096)
		for i := range ips {
			ips[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.allow(clientAddr(ips[i&4095]), now, true)
				i++
			}
		})
	})
}
