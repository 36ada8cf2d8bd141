package edge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/edged-proxy/edged/edge"
)

// records parses the JSON access-log lines written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		out = append(out, rec)
	}
	return out
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{16}-[0-9a-f]+$`)

// A request's ID reaches the origin on fills and pass-through and is
// logged with the request: the client's when sane, a generated one when
// absent or refused. A hit (on the HTTP/1 loop, the fast path) logs one
// too, and no upstream fields.
func TestRequestIDToOriginAndLog(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // path → X-Request-Id the origin got
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("X-Request-Id")
		mu.Unlock()
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "body")
	})
	log := &syncBuffer{}
	base, _ := newEdge(t, edgeOpts{access: log}, o)
	long := strings.Repeat("a", edge.MaxRequestIDLen+1)
	cases := []struct {
		name, method, path, id string
		want                   string // "" means a generated ID
	}{
		{"client fill", "GET", "/fill-client", "abc-123", "abc-123"},
		{"generated fill", "GET", "/fill-gen", "", ""},
		{"too long", "GET", "/fill-long", long, ""},
		{"garbage", "GET", "/fill-garbage", "a b\"c", ""},
		{"client pass", "POST", "/pass-client", "trace.77", "trace.77"},
		{"generated pass", "POST", "/pass-gen", "", ""},
		{"hit", "GET", "/fill-client", "", ""},
	}
	for i, tc := range cases {
		var hdr []string
		if tc.id != "" {
			hdr = []string{"X-Request-ID", tc.id}
		}
		resp, _ := get(t, base, tc.method, "example.com", tc.path, append(hdr, "User-Agent", "ua/"+tc.name)...)
		if resp.Header.Get("X-Request-Id") != "" {
			t.Errorf("%s: the ID was returned to the client", tc.name)
		}
		waitFor(t, func() bool { return len(log.records(t)) == i+1 })
		rec := log.records(t)[i]
		logged, _ := rec["request_id"].(string)
		if rec["user_agent"] != "ua/"+tc.name {
			t.Errorf("%s: user_agent %v", tc.name, rec["user_agent"])
		}
		switch {
		case tc.want != "" && logged != tc.want:
			t.Errorf("%s: logged %q, want %q", tc.name, logged, tc.want)
		case tc.want == "" && !generatedID.MatchString(logged):
			t.Errorf("%s: logged %q, want a generated ID", tc.name, logged)
		}
		if tc.name == "hit" {
			if rec["cache"] != "hit" || rec["upstream_status"] != nil || rec["upstream_ms"] != nil {
				t.Errorf("hit: %v", rec)
			}
			continue
		}
		mu.Lock()
		got := seen[tc.path]
		mu.Unlock()
		if got != logged {
			t.Errorf("%s: the origin got %q, the log says %q", tc.name, got, logged)
		}
		if rec["upstream_status"] != 200.0 || rec["upstream_ttfb_ms"] == nil || rec["upstream_ms"] == nil {
			t.Errorf("%s: upstream fields missing: %v", tc.name, rec)
		}
		if ttfb, total := rec["upstream_ttfb_ms"].(float64), rec["upstream_ms"].(float64); ttfb > total {
			t.Errorf("%s: time to headers %v after the total %v", tc.name, ttfb, total)
		}
	}
}

// Sampling logs about the share asked for, and every error.
func TestAccessSample(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	})
	log := &syncBuffer{}
	base, _ := newEdge(t, edgeOpts{access: log, sample: 0.25}, o)
	const n = 800
	for range n {
		get(t, base, "GET", "example.com", "/ok", "Connection", "keep-alive")
	}
	for range 20 {
		get(t, base, "GET", "example.com", "/fail")
	}
	waitFor(t, func() bool {
		fails := 0
		for _, r := range log.records(t) {
			if r["status"] == 503.0 {
				fails++
			}
		}
		return fails == 20
	})
	oks := len(log.records(t)) - 20
	// 200 expected; the binomial's standard deviation is 12: 8 of them
	// either way fail once in 10^15 runs.
	if oks < 100 || oks > 300 {
		t.Errorf("logged %d of %d requests at 0.25", oks, n)
	}
}
