package purge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edged-proxy/edged/internal/testkit"
	"github.com/edged-proxy/edged/purge"
	"github.com/edged-proxy/edged/purge/purgetest"
)

const (
	allToken  = "secret-all-sites-0123456789"
	siteToken = "secret-site-a-0123456789"
)

func testTokens() []purge.Token {
	return []purge.Token{
		{Value: allToken, Name: "ops"},
		{Value: siteToken, Name: "site-a", Sites: []string{"a.example"}},
	}
}

func newTestPurger(t *testing.T, cfg purge.Config) (*purge.Purger, *purgetest.Recorder, *prometheus.Registry) {
	t.Helper()
	rec := &purgetest.Recorder{}
	if cfg.Invalidator == nil {
		cfg.Invalidator = rec
	}
	if cfg.Tokens == nil {
		cfg.Tokens = testTokens()
	}
	if cfg.Node == "" {
		cfg.Node = "node-1"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	p, err := purge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, rec, reg
}

func post(t *testing.T, h http.Handler, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/purge", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var eb struct{ Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	return eb.Error
}

func TestPostSelectorKinds(t *testing.T) {
	tests := []struct {
		name string
		body string
		want purge.Selector
		kind string
	}{
		{"url", `{"urls":["https://a.example/x?y=1"]}`, purge.Selector{URLs: []string{"https://a.example/x?y=1"}}, "url"},
		{"prefix", `{"prefixes":["a.example/img/","http://b.example:8080/js"]}`, purge.Selector{Prefixes: []string{"a.example/img/", "http://b.example:8080/js"}}, "prefix"},
		{"tag", `{"tags":["product-42","cat:shoes"]}`, purge.Selector{Tags: []string{"product-42", "cat:shoes"}}, "tag"},
		{"host", `{"hosts":["a.example","[::1]:8443","10.0.0.1"]}`, purge.Selector{Hosts: []string{"a.example", "[::1]:8443", "10.0.0.1"}}, "host"},
		{"soft", `{"urls":["http://a.example/"],"soft":true}`, purge.Selector{URLs: []string{"http://a.example/"}, Soft: true}, "url"},
		{"mixed", `{"urls":["http://a.example/"],"tags":["t"],"hosts":["b.example"]}`, purge.Selector{URLs: []string{"http://a.example/"}, Tags: []string{"t"}, Hosts: []string{"b.example"}}, "mixed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, reg := newTestPurger(t, purge.Config{})
			w := post(t, p, allToken, tc.body)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := rec.Selectors(); len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("invalidator got %+v, want [%+v]", got, tc.want)
			}
			var res purge.Result
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			wantM := purge.Matched{URLs: len(tc.want.URLs), Prefixes: len(tc.want.Prefixes), Tags: len(tc.want.Tags), Hosts: len(tc.want.Hosts)}
			if res.ID == "" || res.Matched != wantM || res.Soft != tc.want.Soft || res.Fleet.State != purge.FleetDisabled {
				t.Fatalf("result %+v", res)
			}
			if n := counterValue(t, reg, "edged_purges_total", tc.kind, "ok"); n != 1 {
				t.Fatalf("edged_purges_total{kind=%s,outcome=ok} = %v", tc.kind, n)
			}
		})
	}
}

func TestPostMalformed(t *testing.T) {
	many := `{"tags":[` + strings.Repeat(`"t",`, 1000) + `"t"]}`
	tests := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"bad json", `{"urls":[`, 400, "malformed JSON"},
		{"syntax", `{"urls" "x"}`, 400, "malformed JSON at byte"},
		{"empty body", ``, 400, "empty body"},
		{"not object", `["x"]`, 400, "expected"},
		{"wrong type", `{"urls":"http://a.example/"}`, 400, `field "urls"`},
		{"unknown field", `{"url":["http://a.example/"]}`, 400, `unknown field "url"`},
		{"two values", `{"tags":["a"]} {"tags":["b"]}`, 400, "exactly one JSON object"},
		{"empty selector", `{}`, 400, "empty selector"},
		{"null", `null`, 400, "empty selector"},
		{"relative url", `{"urls":["/foo"]}`, 400, `urls[0] "/foo": not an absolute http or https URL`},
		{"ftp url", `{"urls":["ftp://a.example/x"]}`, 400, "not an absolute http or https URL"},
		{"url bad host", `{"urls":["http://a b.example/"]}`, 400, "urls[0]"},
		{"url fragment", `{"urls":["http://a.example/#x"]}`, 400, "fragment"},
		{"bad host", `{"hosts":["a.example","exa mple"]}`, 400, `hosts[1] "exa mple"`},
		{"bad port", `{"hosts":["a.example:99999"]}`, 400, "invalid port"},
		{"prefix without host", `{"prefixes":["/img/"]}`, 400, "host part"},
		{"empty prefix", `{"prefixes":[""]}`, 400, "empty prefix"},
		{"empty tag", `{"tags":[""]}`, 400, "empty tag"},
		{"tag with space", `{"tags":["a b"]}`, 400, "whitespace"},
		{"too many items", many, 400, "too many items: 1001"},
		{"too large", `{"tags":["` + strings.Repeat("x", 2<<20) + `"]}`, 413, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, _ := newTestPurger(t, purge.Config{})
			w := post(t, p, allToken, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if msg := errorOf(t, w); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not contain %q", msg, tc.msg)
			}
			if got := rec.Selectors(); len(got) != 0 {
				t.Fatalf("invalidator saw %+v", got)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name, token, body string
		status            int
		msg               string
	}{
		{"no token", "", `{"urls":["http://a.example/"]}`, 401, "missing bearer token"},
		{"wrong token", "nope", `{"urls":["http://a.example/"]}`, 401, "invalid bearer token"},
		{"prefix of a token", allToken[:10], `{"urls":["http://a.example/"]}`, 401, "invalid bearer token"},
		{"site token, other site url", siteToken, `{"urls":["http://a.example/","http://b.example/"]}`, 403, `host "b.example"`},
		{"site token, other site prefix", siteToken, `{"prefixes":["b.example/"]}`, 403, "limited to sites"},
		{"site token, other host", siteToken, `{"hosts":["b.example"]}`, 403, "limited to sites"},
		{"site token, tag", siteToken, `{"tags":["x"]}`, 403, "may not purge by tag"},
		// Auth comes before parsing: an unauthenticated caller learns nothing of the body.
		{"no token, bad body", "", `{`, 401, "missing bearer token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rec, _ := newTestPurger(t, purge.Config{})
			w := post(t, p, tc.token, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if msg := errorOf(t, w); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not contain %q", msg, tc.msg)
			}
			if tc.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
			if got := rec.Selectors(); len(got) != 0 {
				t.Fatalf("invalidator saw %+v", got)
			}
		})
	}

	t.Run("site token, own site with port", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{})
		w := post(t, p, siteToken, `{"urls":["https://A.example:8443/x"],"hosts":["a.example"]}`)
		if w.Code != 200 || len(rec.Selectors()) != 1 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
	t.Run("custom SiteOf", func(t *testing.T) {
		siteOf := func(h string) string {
			if strings.HasSuffix(h, ".cdn.example") {
				return "a.example"
			}
			return ""
		}
		p, rec, _ := newTestPurger(t, purge.Config{SiteOf: siteOf})
		if w := post(t, p, siteToken, `{"prefixes":["img.cdn.example/"]}`); w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w := post(t, p, siteToken, `{"prefixes":["a.example/"]}`); w.Code != 403 || !strings.Contains(errorOf(t, w), "no site") {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if n := len(rec.Selectors()); n != 1 {
			t.Fatalf("invalidator called %d times", n)
		}
	})
	t.Run("no tokens configured", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{Tokens: []purge.Token{}})
		w := post(t, p, "anything", `{"urls":["http://a.example/"]}`)
		if w.Code != 403 || !strings.Contains(errorOf(t, w), "no purge tokens are configured") {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if len(rec.Selectors()) != 0 {
			t.Fatal("purged without tokens")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		p, _, reg := newTestPurger(t, purge.Config{})
		post(t, p, "", `{"urls":["http://a.example/"]}`)
		post(t, p, siteToken, `{"tags":["x"]}`)
		post(t, p, allToken, `{}`)
		for _, c := range []struct{ kind, outcome string }{{"unknown", "unauthorized"}, {"tag", "forbidden"}, {"none", "bad_request"}} {
			if n := counterValue(t, reg, "edged_purges_total", c.kind, c.outcome); n != 1 {
				t.Errorf("edged_purges_total{%s,%s} = %v", c.kind, c.outcome, n)
			}
		}
	})
}

func TestInvalidatorError(t *testing.T) {
	p, rec, reg := newTestPurger(t, purge.Config{})
	rec.Fail(errors.New("disk on fire"))
	w := post(t, p, allToken, `{"tags":["x"]}`)
	if w.Code != 500 || !strings.Contains(errorOf(t, w), "disk on fire") {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if n := counterValue(t, reg, "edged_purges_total", "tag", "error"); n != 1 {
		t.Fatalf("error counter %v", n)
	}
}

func TestReceipt(t *testing.T) {
	p, _, _ := newTestPurger(t, purge.Config{Node: "edge-7"})
	w := post(t, p, allToken, `{"tags":["a"],"soft":true}`)
	var res purge.Result
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	get := func(id, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/purge/"+id, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		return w
	}
	w = get(res.ID, allToken)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var rc purge.Receipt
	if err := json.Unmarshal(w.Body.Bytes(), &rc); err != nil {
		t.Fatal(err)
	}
	if rc.ID != res.ID || !reflect.DeepEqual(rc.Selector, purge.Selector{Tags: []string{"a"}, Soft: true}) ||
		rc.Origin != "edge-7" || rc.AcceptedAt.IsZero() || rc.Fleet.State != purge.FleetDisabled ||
		len(rc.Nodes) != 1 || rc.Nodes[0].Node != "edge-7" || rc.Nodes[0].AppliedAt.IsZero() || rc.Nodes[0].Matched.Tags != 1 {
		t.Fatalf("receipt %+v", rc)
	}
	if w := get("0123456789abcdef0123456789abcdef", allToken); w.Code != 404 {
		t.Fatalf("unknown id: status %d", w.Code)
	}
	if w := get("..%2Fetc", allToken); w.Code != 404 {
		t.Fatalf("bad id: status %d", w.Code)
	}
	if w := get(res.ID, ""); w.Code != 401 {
		t.Fatalf("no token: status %d", w.Code)
	}
}

func TestPurgeMethod(t *testing.T) {
	do := func(t *testing.T, p *purge.Purger, path, token string, hdr map[string]string) *http.Response {
		t.Helper()
		srv := httptest.NewServer(p.MethodHandler())
		t.Cleanup(srv.Close)
		req, err := http.NewRequest("PURGE", srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "a.example"
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	other := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	both := []string{"http://a.example/img/x.png?v=2", "https://a.example/img/x.png?v=2"}

	t.Run("allowed cidr", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{AllowCIDRs: loopback, Tokens: []purge.Token{}})
		resp := do(t, p, "/img/x.png?v=2", "", nil)
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var res purge.Result
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || res.ID == "" || res.Matched.URLs != 2 {
			t.Fatalf("result %+v, %v", res, err)
		}
		if got := rec.Selectors(); len(got) != 1 || !reflect.DeepEqual(got[0], purge.Selector{URLs: both}) {
			t.Fatalf("invalidator got %+v", got)
		}
	})
	t.Run("soft", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{AllowCIDRs: loopback})
		if resp := do(t, p, "/img/x.png?v=2", "", map[string]string{"Soft-Purge": "1"}); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := rec.Selectors(); len(got) != 1 || !got[0].Soft {
			t.Fatalf("invalidator got %+v", got)
		}
	})
	t.Run("token", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{AllowCIDRs: other})
		if resp := do(t, p, "/img/x.png?v=2", siteToken, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := rec.Selectors(); len(got) != 1 || !reflect.DeepEqual(got[0].URLs, both) {
			t.Fatalf("invalidator got %+v", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		p, rec, reg := newTestPurger(t, purge.Config{AllowCIDRs: other})
		for _, tok := range []string{"", "wrong"} {
			resp := do(t, p, "/x", tok, nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 403 || !strings.Contains(string(b), "not allowed from 127.0.0.1") {
				t.Fatalf("token %q: status %d: %s", tok, resp.StatusCode, b)
			}
		}
		if len(rec.Selectors()) != 0 {
			t.Fatal("purged")
		}
		if n := counterValue(t, reg, "edged_purges_total", "url", "forbidden"); n != 2 {
			t.Fatalf("forbidden counter %v", n)
		}
	})
	t.Run("site token for another site", func(t *testing.T) {
		p, rec, _ := newTestPurger(t, purge.Config{})
		srv := httptest.NewServer(p.MethodHandler())
		defer srv.Close()
		req, _ := http.NewRequest("PURGE", srv.URL+"/x", nil)
		req.Host = "b.example"
		req.Header.Set("Authorization", "Bearer "+siteToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || len(rec.Selectors()) != 0 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("other method", func(t *testing.T) {
		p, _, _ := newTestPurger(t, purge.Config{})
		w := httptest.NewRecorder()
		p.MethodHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
		if w.Code != 405 || w.Header().Get("Allow") != "PURGE" {
			t.Fatalf("status %d", w.Code)
		}
	})
}

func TestNewConfigErrors(t *testing.T) {
	rec := &purgetest.Recorder{}
	tests := []struct {
		name string
		cfg  purge.Config
		msg  string
	}{
		{"no invalidator", purge.Config{}, "Invalidator is required"},
		{"empty token", purge.Config{Invalidator: rec, Tokens: []purge.Token{{Name: "x"}}}, "empty value"},
		{"duplicate token", purge.Config{Invalidator: rec, Tokens: []purge.Token{{Value: "a"}, {Value: "a"}}}, "same value"},
		{"bad node", purge.Config{Invalidator: rec, Node: "a.b"}, "Config.Node"},
		{"fleet without node", purge.Config{Invalidator: rec, JoinFleet: joinNever(t)}, "Node is required"},
		{"fleet refuses", purge.Config{Invalidator: rec, Node: "n", JoinFleet: func(purge.Local) (purge.Fleet, error) { return nil, errors.New("purge: NATS.URL is required") }}, "NATS.URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := purge.New(tc.cfg)
			if err == nil {
				p.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

// joinNever is a JoinFleet that fails the test when called.
func joinNever(t *testing.T) func(purge.Local) (purge.Fleet, error) {
	return func(purge.Local) (purge.Fleet, error) {
		t.Error("JoinFleet called")
		return nil, errors.New("not joined")
	}
}

// counterValue reads edged_purges_total-style counters by kind and
// outcome, 0 when the series does not exist yet.
func counterValue(t *testing.T, reg *prometheus.Registry, name, kind, outcome string) float64 {
	t.Helper()
	v, _ := testkit.Metric(t, reg, name, "kind", kind, "outcome", outcome)
	return v
}

func TestPurgeIsLogged(t *testing.T) {
	var buf bytes.Buffer
	p, _, _ := newTestPurger(t, purge.Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	w := post(t, p, allToken, `{"urls":["https://a.example/x"],"tags":["t"]}`)
	var res purge.Result
	_ = json.Unmarshal(w.Body.Bytes(), &res)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	sel, _ := line["selector"].(map[string]any)
	if line["id"] != res.ID || line["who"] != "token:ops" || line["matched"] != float64(2) || line["duration"] == nil ||
		sel == nil || sel["tags"] == nil || sel["urls"] == nil {
		t.Fatalf("log line %v", line)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A nil Config.Logger discards: nothing reaches slog.Default.
func TestNilLoggerDiscards(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	rec := &purgetest.Recorder{}
	p, err := purge.New(purge.Config{Invalidator: rec, Tokens: testTokens()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if w := post(t, p, allToken, `{"tags":["t"]}`); w.Code != http.StatusOK {
		t.Fatalf("purge: %d %s", w.Code, w.Body)
	}
	if w := post(t, p, "wrong-token", `{"tags":["t"]}`); w.Code != http.StatusUnauthorized {
		t.Fatalf("refusal: %d %s", w.Code, w.Body)
	}
	if len(rec.Selectors()) != 1 || buf.Len() != 0 {
		t.Fatalf("applied %d purges; slog.Default got %q", len(rec.Selectors()), buf.String())
	}
}
