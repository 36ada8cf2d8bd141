package cache

import (
	"testing"

	"github.com/edged-proxy/edged/storage"
)

// BenchmarkWarmStart10k times a warm start of 10,000 4 KiB objects from a
// reopened disk tier into an empty memory tier: unpaced (the cost of
// warming) and at the default 50 MiB/s.
func BenchmarkWarmStart10k(b *testing.B) {
	const n = 10_000
	d, _ := warmDisk(b, b.TempDir(), nil, keys("hot", n), 4096)
	for _, rate := range []int64{-1, 50 << 20} {
		name := "unpaced"
		if rate > 0 {
			name = "50MiBps"
		}
		b.Run(name, func(b *testing.B) { benchWarm(b, d, n, rate) })
	}
}

func benchWarm(b *testing.B, d *storage.Store, n int, rate int64) {
	for b.Loop() {
		b.StopTimer()
		c, err := New(Config{Disk: d, MaxBytes: 128 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res := <-c.WarmStart(WarmOptions{Rate: rate})
		b.StopTimer()
		if res.Objects != int64(n) {
			b.Fatalf("warm start: %+v, want %d objects", res, n)
		}
		c.Close()
		b.StartTimer()
	}
}
