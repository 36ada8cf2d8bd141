package cluster_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/edged-proxy/edged/lb/cluster"
)

// BenchmarkOwner is the lookup on every miss: ketama over the live
// members, with and without bounded loads.
func BenchmarkOwner(b *testing.B) {
	ks := keys(4096)
	for _, n := range []int{3, 32} {
		for _, factor := range []float64{0, 1.25} {
			b.Run(fmt.Sprintf("members=%d/factor=%v", n, factor), func(b *testing.B) {
				members := make([]cluster.Member, n)
				for i := range members {
					members[i] = cluster.Member{Name: "node-" + strconv.Itoa(i), Addr: "127.0.0.1:" + strconv.Itoa(1+i)}
				}
				c := newStatic(b, cluster.Config{Name: "node-0", Static: members, BalanceFactor: factor})
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					c.Owner(ks[i&(len(ks)-1)])
					i++
				}
			})
		}
	}
}

// BenchmarkAdmit is the replica admission on every peer-owned miss.
func BenchmarkAdmit(b *testing.B) {
	ks := keys(4096)
	c := newStatic(b, cluster.Config{Name: "a", Static: abc})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Admit(ks[i&(len(ks)-1)])
		i++
	}
}
