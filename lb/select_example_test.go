package lb_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"

	"github.com/edged-proxy/edged/lb"
)

// A balancing policy of one's own, plugged in through Config.Selector: a
// canary shard takes only the requests that ask for it (here, by a
// request header); the others go to the stable shards, least loaded
// first, and fall back to the canary only if no stable shard is eligible.
func ExampleSelector() {
	var shards []lb.Shard
	for _, name := range []string{"stable-1", "stable-2", "canary"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Origin", name)
		}))
		defer srv.Close()
		shards = append(shards, lb.Shard{Name: name, URL: srv.URL})
	}
	canary := lb.SelectorFunc(func(_ string, req *http.Request, ups []*lb.Upstream) []*lb.Upstream {
		wantCanary := req.Header.Get("X-Canary") == "1"
		slices.SortStableFunc(ups, func(a, b *lb.Upstream) int {
			if ca, cb := a.Name() == "canary", b.Name() == "canary"; ca != cb {
				if ca == wantCanary {
					return -1
				}
				return 1
			}
			return a.InFlight() - b.InFlight()
		})
		return ups
	})
	pool, err := lb.NewPool(lb.Config{Name: "api", Shards: shards, Selector: canary})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	for _, hdr := range []string{"", "1", ""} {
		req, _ := http.NewRequest("GET", "http://api.example/v1/items", nil)
		if hdr != "" {
			req.Header.Set("X-Canary", hdr)
		}
		resp, route, err := pool.Do(req, "")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("X-Canary %q: %s\n", hdr, route.Shard)
	}
	// Output:
	// X-Canary "": stable-1
	// X-Canary "1": canary
	// X-Canary "": stable-1
}
