package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// recipeOrigin is an origin that says who it is and what it was asked:
// its body is "NAME PATH?QUERY", it sends Server and X-Powered-By, and
// Cache-Control max-age=60, except paths holding /long/ (max-age=86400)
// and /status/NNN, which answers NNN with max-age=86400. It counts the requests it gets.
type recipeOrigin struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int // by path
}

func newRecipeOrigin(t *testing.T, name string) *recipeOrigin {
	o := &recipeOrigin{count: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.count[r.URL.Path]++
		o.mu.Unlock()
		w.Header().Set("Server", "origin/1.0")
		w.Header().Set("X-Powered-By", "php/8")
		w.Header().Set("Content-Type", "text/plain")
		code := http.StatusOK
		w.Header().Set("Cache-Control", "max-age=60")
		if strings.Contains(r.URL.Path, "/long/") {
			w.Header().Set("Cache-Control", "max-age=86400")
		}
		if s, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			code, _ = strconv.Atoi(s)
			w.Header().Set("Cache-Control", "max-age=86400")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s %s?%s", name, r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *recipeOrigin) requests(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[path]
}

// recipeEnv is one recipe's edged, in front of origin A (the site's) and
// B (http://127.0.0.1:8081 in the snippet).
type recipeEnv struct {
	t    *testing.T
	edge string
	a, b *recipeOrigin
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) hit() bool { return strings.HasPrefix(a.header.Get("Cache-Status"), "edged; hit") }

// get sends a GET for target (a path, or a URL path with query) with
// the given fields ("Host" among them sets the Host), without following
// redirects.
func (e *recipeEnv) get(target string, fields ...string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+e.edge+target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "Host" {
			req.Host = fields[i+1]
			continue
		}
		req.Header.Add(fields[i], fields[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// recipeChecks prove each recipe of docs/recipes.md does what its sentence
// says, by name (the <!-- recipe: NAME --> marker).
var recipeChecks = map[string]func(e *recipeEnv){
	"static-assets": func(e *recipeEnv) {
		first := e.get("/static/app.css?v=1")
		second := e.get("/static/app.css?v=2")
		if !second.hit() || e.a.requests("/static/app.css") != 1 {
			e.t.Errorf("?v=2 after ?v=1: Cache-Status %q, origin asked %d times; want one object", second.header.Get("Cache-Status"), e.a.requests("/static/app.css"))
		}
		if cc := first.header.Get("Cache-Control"); cc != "max-age=31536000" {
			e.t.Errorf("Cache-Control to the browser = %q, want a year", cc)
		}
		if !regexp.MustCompile(`ttl=3153(5\d\d\d|6000)\b`).MatchString(second.header.Get("Cache-Status")) {
			e.t.Errorf("edge TTL: Cache-Status %q, want a year", second.header.Get("Cache-Status"))
		}
		if first.body != "A /static/app.css?" {
			e.t.Errorf("the origin got %q, want no query", first.body)
		}
	},
	"html-minute": func(e *recipeEnv) {
		e.get("/articles/long/a")
		second := e.get("/articles/long/a")
		cs := second.header.Get("Cache-Status")
		if !second.hit() || !regexp.MustCompile(`ttl=(5\d|60)\b`).MatchString(cs) {
			e.t.Errorf("Cache-Status %q, want a hit with a TTL of about a minute (the origin said a day)", cs)
		}
		e.get("/index.html")
		if cs := e.get("/index.html").header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			e.t.Errorf("/index.html not cached: %q", cs)
		}
		if e.get("/other").hit() {
			e.t.Errorf("/other is not HTML, and has not been asked for: no hit expected")
		}
	},
	"bypass-api-and-sessions": func(e *recipeEnv) {
		for range 2 {
			a := e.get("/api/users")
			if a.hit() || !strings.Contains(a.header.Get("Cache-Status"), "fwd=bypass") || !strings.Contains(a.header.Get("Cache-Status"), "detail=rule:api") {
				e.t.Errorf("/api/users: Cache-Status %q, want a bypass by rule api", a.header.Get("Cache-Status"))
			}
		}
		e.get("/page")
		if !e.get("/page").hit() {
			e.t.Errorf("/page without a session not cached")
		}
		if a := e.get("/page", "Cookie", "theme=dark; session=abc"); a.hit() || !strings.Contains(a.header.Get("Cache-Status"), "detail=rule:logged-in") {
			e.t.Errorf("/page with a session: Cache-Status %q, want a bypass by rule logged-in", a.header.Get("Cache-Status"))
		}
		if e.a.requests("/api/users") != 2 {
			e.t.Errorf("origin saw /api/users %d times, want 2", e.a.requests("/api/users"))
		}
	},
	"ignore-tracking": func(e *recipeEnv) {
		first := e.get("/p?id=7&utm_source=mail&utm_medium=x")
		second := e.get("/p?fbclid=abc&id=7")
		if !second.hit() || first.body != "A /p?id=7" {
			e.t.Errorf("second hit=%v, origin got %q; want one object and ?id=7 at the origin", second.hit(), first.body)
		}
		if e.get("/p?id=8&gclid=1").hit() {
			e.t.Errorf("?id=8 shared ?id=7's object")
		}
	},
	"sort-query": func(e *recipeEnv) {
		first := e.get("/search?b=2&a=1")
		if !e.get("/search?a=1&b=2").hit() || first.body != "A /search?a=1&b=2" {
			e.t.Errorf("origin got %q; want one object, sorted", first.body)
		}
		if e.get("/other?b=2&a=1").body != "A /other?b=2&a=1" {
			e.t.Errorf("a path the rule does not match had its query sorted")
		}
	},
	"ab-cookie": func(e *recipeEnv) {
		if e.get("/landing/x", "Cookie", "ab_bucket=A").hit() || e.get("/landing/x", "Cookie", "ab_bucket=B").hit() {
			e.t.Errorf("bucket B got bucket A's object")
		}
		if !e.get("/landing/x", "Cookie", "x=1; ab_bucket=A").hit() {
			e.t.Errorf("bucket A's second request missed")
		}
		if e.get("/landing/x").hit() {
			e.t.Errorf("no bucket got a bucket's object")
		}
		if n := e.a.requests("/landing/x"); n != 3 {
			e.t.Errorf("origin asked %d times, want 3 (A, B, none)", n)
		}
	},
	"security-headers": func(e *recipeEnv) {
		for i := range 2 { // a miss, then a hit
			a := e.get("/s")
			if a.header.Get("X-Frame-Options") != "DENY" || a.header.Get("Strict-Transport-Security") == "" ||
				a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") == "" {
				e.t.Errorf("request %d: security headers missing: %v", i, a.header)
			}
			if a.header.Get("Server") != "" || a.header.Get("X-Powered-By") != "" {
				e.t.Errorf("request %d: origin internals shown: Server %q, X-Powered-By %q", i, a.header.Get("Server"), a.header.Get("X-Powered-By"))
			}
		}
	},
	"https-redirect": func(e *recipeEnv) {
		a := e.get("/a/b?c=d", "Host", "www.example.com")
		if a.status != http.StatusPermanentRedirect || a.header.Get("Location") != "https://www.example.com/a/b?c=d" {
			e.t.Errorf("got %d Location %q", a.status, a.header.Get("Location"))
		}
		if e.a.requests("/a/b") != 0 {
			e.t.Errorf("the origin was asked")
		}
	},
	"origin-by-path": func(e *recipeEnv) {
		if a := e.get("/api/v1/x"); !strings.HasPrefix(a.body, "B ") {
			e.t.Errorf("/api/v1/x answered by %q, want the API origin", a.body)
		}
		if a := e.get("/home"); !strings.HasPrefix(a.body, "A ") {
			e.t.Errorf("/home answered by %q, want the site's origin", a.body)
		}
	},
	"maintenance": func(e *recipeEnv) {
		a := e.get("/anything")
		if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "Back soon") ||
			a.header.Get("Retry-After") != "600" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
			e.t.Errorf("got %d %v %q", a.status, a.header, a.body)
		}
		if e.a.requests("/anything") != 0 {
			e.t.Errorf("the origin was asked")
		}
	},
	"block-range": func(e *recipeEnv) {
		// The test's client is 127.0.0.1, outside the blocked ranges.
		if a := e.get("/x"); a.status != http.StatusOK {
			e.t.Errorf("a client outside the ranges got %d", a.status)
		}
	},
	"login-rate-limit": func(e *recipeEnv) {
		for i := range 5 {
			if a := e.get("/login"); a.status != http.StatusOK {
				e.t.Fatalf("try %d: %d, want 200", i+1, a.status)
			}
		}
		a := e.get("/login")
		ra, _ := strconv.Atoi(a.header.Get("Retry-After"))
		if a.status != http.StatusTooManyRequests || ra < 1 || ra > 12 || a.header.Get("Cache-Status") != "edged; fwd=bypass; detail=rule:login" {
			e.t.Errorf("sixth try: %d, Retry-After %q, Cache-Status %q; want 429, 1-12, detail=rule:login", a.status,
				a.header.Get("Retry-After"), a.header.Get("Cache-Status"))
		}
		if a := e.get("/home"); a.status != http.StatusOK {
			e.t.Errorf("another path: %d", a.status)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		other := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		resp, err := other.Get("http://" + e.edge + "/login")
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			e.t.Errorf("another address: %d, want 200", resp.StatusCode)
		}
	},
	"status-ttls": func(e *recipeEnv) {
		e.get("/status/404")
		a := e.get("/status/404")
		if !a.hit() || !regexp.MustCompile(`ttl=(2\d|30)\b`).MatchString(a.header.Get("Cache-Status")) {
			e.t.Errorf("404: Cache-Status %q, want a hit with ttl about 30 (the origin said a day)", a.header.Get("Cache-Status"))
		}
		for range 2 {
			if a := e.get("/status/503"); a.hit() || !strings.Contains(a.header.Get("Cache-Status"), "detail=rule") {
				e.t.Errorf("503: Cache-Status %q, want not stored by the rule", a.header.Get("Cache-Status"))
			}
		}
		if e.a.requests("/status/503") != 2 {
			e.t.Errorf("origin asked for the 503 %d times, want 2", e.a.requests("/status/503"))
		}
	},
	"host-folding": func(e *recipeEnv) {
		e.get("/f", "Host", "example.com")
		if !e.get("/f", "Host", "m.example.com").hit() || !e.get("/f", "Host", "www.example.com").hit() {
			e.t.Errorf("folded hosts do not share the object")
		}
		e.get("/f", "Host", "other.example.net")
		if e.a.requests("/f") != 2 {
			e.t.Errorf("origin asked %d times for /f, want 2 (the folded hosts once, the other host once)", e.a.requests("/f"))
		}
	},
}

// recipeBlock finds "<!-- recipe: NAME -->" followed by a YAML block.
var recipeBlock = regexp.MustCompile("(?s)<!-- recipe: ([a-z0-9-]+) -->\n```yaml\n(.*?)```")

// TestRecipes runs every recipe of docs/recipes.md through edged against
// real origins, so that the cookbook cannot drift from what edged does.
func TestRecipes(t *testing.T) {
	doc, err := os.ReadFile("../../docs/recipes.md")
	if err != nil {
		t.Fatal(err)
	}
	found := recipeBlock.FindAllStringSubmatch(string(doc), -1)
	if len(found) < 10 {
		t.Fatalf("docs/recipes.md has %d recipes, want at least 10", len(found))
	}
	seen := map[string]bool{}
	for _, m := range found {
		name, snippet := m[1], m[2]
		seen[name] = true
		check := recipeChecks[name]
		if check == nil {
			t.Errorf("recipe %s has no check in recipeChecks", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			a, b := newRecipeOrigin(t, "A"), newRecipeOrigin(t, "B")
			snippet = strings.ReplaceAll(snippet, "http://127.0.0.1:8081", b.URL)
			var site strings.Builder
			fmt.Fprintf(&site, "log:\n  access: false\nsites:\n  - name: site\n    hosts: [\"*\"]\n    origins:\n      - url: %s\n", a.URL)
			for _, line := range strings.Split(strings.TrimRight(snippet, "\n"), "\n") {
				site.WriteString("    " + line + "\n")
			}
			l, _ := startDaemon(t, "-config", writeConfig(t, site.String()))
			check(&recipeEnv{t: t, edge: l.Edge, a: a, b: b})
		})
	}
	for name := range recipeChecks {
		if !seen[name] {
			t.Errorf("recipeChecks has %s, which docs/recipes.md does not", name)
		}
	}
}
