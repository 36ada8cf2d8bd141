package rfc

import (
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pquerna/cachecontrol"
	"github.com/pquerna/cachecontrol/cacheobject"
)

// polT0 is the Date of most test responses; polNow is when they are
// evaluated, an hour later, so a test can tell which one was used.
var (
	polT0  = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	polNow = polT0.Add(time.Hour)
)

func polDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// polHeader builds a header from name, value pairs; a name may repeat.
func polHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestPolicyEvaluate(t *testing.T) {
	date := polDate(polT0)
	lm := func(before time.Duration) string { return polDate(polT0.Add(-before)) }
	maxInt32 := time.Duration(math.MaxInt32) * time.Second
	fresh := func(d time.Duration) Decision { return Decision{Storable: true, Lifetime: d} }
	heur := func(d time.Duration) Decision { return Decision{Storable: true, Lifetime: d, Heuristic: true} }
	mr := func(d time.Duration) Decision { return Decision{Storable: true, Lifetime: d, MustRevalidate: true} }
	nc := func(d time.Duration) Decision { return Decision{Storable: true, Lifetime: d, NoCache: true} }
	ncf := func(d time.Duration, fields ...string) Decision {
		return Decision{Storable: true, Lifetime: d, NoCacheFields: fields}
	}
	no := func(reason string) Decision { return Decision{Reason: reason} }

	tests := []struct {
		name   string
		policy Policy
		method string      // "" means GET
		req    http.Header // request header
		status int         // 0 means 200
		resp   []string    // response header pairs; Date: polT0 is added unless noDate
		noDate bool
		want   Decision
	}{
		// Explicit freshness and its precedence (RFC 9111 §4.2.1).
		{name: "max-age", resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "max-age=0 stored stale", resp: []string{"Cache-Control", "max-age=0"}, want: fresh(0)},
		{name: "s-maxage beats max-age", resp: []string{"Cache-Control", "max-age=60, s-maxage=600"}, want: mr(600 * time.Second)},
		{name: "s-maxage beats Expires", resp: []string{"Cache-Control", "s-maxage=30", "Expires", polDate(polT0.Add(time.Hour))}, want: mr(30 * time.Second)},
		{name: "max-age beats Expires", resp: []string{"Cache-Control", "max-age=60", "Expires", polDate(polT0.Add(time.Hour))}, want: fresh(60 * time.Second)},
		{name: "Expires minus Date", resp: []string{"Expires", polDate(polT0.Add(2 * time.Hour))}, want: fresh(2 * time.Hour)},
		{name: "Expires without Date uses now", noDate: true, resp: []string{"Expires", polDate(polT0.Add(2 * time.Hour))}, want: fresh(time.Hour)},
		{name: "Expires with invalid Date uses now", noDate: true, resp: []string{"Date", "yesterday", "Expires", polDate(polT0.Add(2 * time.Hour))}, want: fresh(time.Hour)},
		{name: "Expires before Date", resp: []string{"Expires", polDate(polT0.Add(-time.Hour))}, want: fresh(0)},
		{name: "Expires 0 is already expired", resp: []string{"Expires", "0"}, want: fresh(0)},
		{name: "Expires -1 is already expired", resp: []string{"Expires", "-1"}, want: fresh(0)},
		{name: "Expires garbage ignores Last-Modified", resp: []string{"Expires", "soon", "Last-Modified", lm(100 * time.Hour)}, want: fresh(0)},
		{name: "Expires empty on 302 is present", status: 302, resp: []string{"Expires", ""}, want: fresh(0)},
		{name: "Expires lines that disagree", resp: []string{"Expires", polDate(polT0.Add(time.Hour)), "Expires", polDate(polT0.Add(2 * time.Hour))}, want: fresh(0)},
		{name: "Expires lines that agree", resp: []string{"Expires", polDate(polT0.Add(time.Hour)), "Expires", polDate(polT0.Add(time.Hour))}, want: fresh(time.Hour)},
		{name: "invalid Expires ignored under max-age", resp: []string{"Cache-Control", "max-age=60", "Expires", "0"}, want: fresh(60 * time.Second)},

		// Parsing: case, spacing, quoting, malformed values, duplicates.
		{name: "quoted max-age", resp: []string{"Cache-Control", `max-age="60"`}, want: fresh(60 * time.Second)},
		{name: "upper-case names", resp: []string{"Cache-Control", "PUBLIC, Max-Age=60"}, want: fresh(60 * time.Second)},
		{name: "odd spacing and empty members", resp: []string{"Cache-Control", " ,, max-age=60 ,\t,public , "}, want: fresh(60 * time.Second)},
		{name: "spaces around equals", resp: []string{"Cache-Control", "max-age = 60"}, want: fresh(60 * time.Second)},
		{name: "invalid max-age is stale", resp: []string{"Cache-Control", "max-age=abc"}, want: fresh(0)},
		{name: "negative max-age is stale", resp: []string{"Cache-Control", "max-age=-5"}, want: fresh(0)},
		{name: "max-age without value is stale", resp: []string{"Cache-Control", "max-age"}, want: fresh(0)},
		{name: "max-age with two numbers is stale", resp: []string{"Cache-Control", "max-age=60 30"}, want: fresh(0)},
		{name: "max-age unterminated quote is stale", resp: []string{"Cache-Control", `max-age="60`}, want: fresh(0)},
		{name: "huge max-age is clamped", resp: []string{"Cache-Control", "max-age=99999999999999"}, want: fresh(maxInt32)},
		{name: "duplicate equal max-age", resp: []string{"Cache-Control", "max-age=60, max-age=60"}, want: fresh(60 * time.Second)},
		{name: "duplicate different max-age is stale", resp: []string{"Cache-Control", "max-age=60, max-age=600"}, want: fresh(0)},
		{name: "duplicate max-age across lines", resp: []string{"Cache-Control", "max-age=600", "Cache-Control", "max-age=60"}, want: fresh(0)},
		{name: "invalid s-maxage is stale even with max-age", resp: []string{"Cache-Control", "s-maxage=soon, max-age=60"}, want: mr(0)},
		{name: "unknown extensions ignored", resp: []string{"Cache-Control", `max-age=60, foo="a,b", bar, immutable`}, want: fresh(60 * time.Second)},
		{name: "quoted comma does not split", resp: []string{"Cache-Control", `no-cache="Set-Cookie, X-Foo", max-age=60`}, want: ncf(60*time.Second, "Set-Cookie", "X-Foo")},

		// Heuristic freshness (RFC 9111 §4.2.2).
		{name: "heuristic 10% of Date-Last-Modified", resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(time.Hour)},
		{name: "heuristic capped at 24h", resp: []string{"Last-Modified", lm(100 * 24 * time.Hour)}, want: heur(24 * time.Hour)},
		{name: "heuristic custom fraction", policy: Policy{HeuristicFraction: 0.5}, resp: []string{"Last-Modified", lm(time.Hour)}, want: heur(30 * time.Minute)},
		{name: "heuristic custom cap", policy: Policy{HeuristicFraction: 0.5, HeuristicMax: 2 * time.Hour}, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(2 * time.Hour)},
		{name: "heuristic NaN fraction means default", policy: Policy{HeuristicFraction: math.NaN()}, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(time.Hour)},
		{name: "heuristic infinite fraction hits cap", policy: Policy{HeuristicFraction: math.Inf(1)}, resp: []string{"Last-Modified", lm(time.Hour)}, want: heur(24 * time.Hour)},
		{name: "heuristic without Last-Modified", want: heur(0)},
		{name: "heuristic Last-Modified after Date", resp: []string{"Last-Modified", polDate(polT0.Add(time.Hour))}, want: heur(0)},
		{name: "heuristic invalid Last-Modified", resp: []string{"Last-Modified", "last week"}, want: heur(0)},
		{name: "heuristic without Date uses now", noDate: true, resp: []string{"Last-Modified", polDate(polNow.Add(-10 * time.Hour))}, want: heur(time.Hour)},
		{name: "DefaultTTL replaces heuristic", policy: Policy{DefaultTTL: 5 * time.Minute}, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(5 * time.Minute)},
		{name: "DefaultTTL ignored with explicit freshness", policy: Policy{DefaultTTL: 5 * time.Minute}, resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "DefaultTTL ignored with invalid Expires", policy: Policy{DefaultTTL: 5 * time.Minute}, resp: []string{"Expires", "0"}, want: fresh(0)},
		{name: "heuristic 404", status: 404, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(time.Hour)},
		{name: "heuristic 308", status: 308, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: heur(time.Hour)},
		{name: "heuristic 501 with DefaultTTL", policy: Policy{DefaultTTL: time.Minute}, status: 501, want: heur(time.Minute)},

		// Status codes.
		{name: "302 without freshness", status: 302, resp: []string{"Last-Modified", lm(time.Hour)}, want: no("no-freshness")},
		{name: "302 with max-age", status: 302, resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "302 public gets no heuristic", status: 302, policy: Policy{DefaultTTL: time.Hour}, resp: []string{"Cache-Control", "public", "Last-Modified", lm(10 * time.Hour)}, want: fresh(0)},
		{name: "500 without freshness", status: 500, want: no("no-freshness")},
		{name: "503 with max-age", status: 503, resp: []string{"Cache-Control", "max-age=5"}, want: fresh(5 * time.Second)},
		{name: "206 not understood", status: 206, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},
		{name: "304 not understood", status: 304, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},
		{name: "103 not final", status: 103, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},
		{name: "407 not stored", status: 407, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},
		{name: "412 not stored", status: 412, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},
		{name: "600 is no status class", status: 600, resp: []string{"Cache-Control", "max-age=60"}, want: no("status")},

		// A final status edged does not recognise is storable with
		// explicit freshness or public (RFC 9111 §3); heuristics stay with
		// the statuses of RFC 9110 §15.1.
		{name: "299 unknown with public and max-age", status: 299, resp: []string{"Cache-Control", "public, max-age=60"}, want: fresh(60 * time.Second)},
		{name: "599 unknown with max-age", status: 599, resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "432 unknown with s-maxage", status: 432, resp: []string{"Cache-Control", "s-maxage=60"}, want: mr(60 * time.Second)},
		{name: "418 with Expires", status: 418, resp: []string{"Expires", polDate(polT0.Add(time.Minute))}, want: fresh(time.Minute)},
		{name: "299 unknown with an invalid Expires: stored stale", status: 299, resp: []string{"Expires", "0"}, want: fresh(0)},
		{name: "299 unknown with public only: stored stale, no heuristic", status: 299, policy: Policy{DefaultTTL: time.Hour}, resp: []string{"Cache-Control", "public", "Last-Modified", lm(10 * time.Hour)}, want: fresh(0)},
		{name: "299 unknown without freshness", status: 299, resp: []string{"Last-Modified", lm(10 * time.Hour)}, want: no("no-freshness")},
		{name: "599 unknown with no-store", status: 599, resp: []string{"Cache-Control", "max-age=60, no-store"}, want: no("no-store")},

		// no-store, private, no-cache, revalidation.
		{name: "no-store", resp: []string{"Cache-Control", "no-store"}, want: no("no-store")},
		{name: "NO-STORE with public", resp: []string{"Cache-Control", "public, NO-STORE, max-age=60"}, want: no("no-store")},
		{name: "no-store with argument", resp: []string{"Cache-Control", `no-store="1", max-age=60`}, want: no("no-store")},
		{name: "private", resp: []string{"Cache-Control", "private, max-age=60"}, want: no("private")},
		{name: "private beats public and s-maxage", resp: []string{"Cache-Control", "public, s-maxage=60, private"}, want: no("private")},
		{name: "qualified private", resp: []string{"Cache-Control", `private="Set-Cookie", max-age=60`}, want: no("private")},
		{name: "unquoted qualified private", resp: []string{"Cache-Control", `private=X-User,max-age=60`}, want: no("private")},
		{name: "no-cache stored", resp: []string{"Cache-Control", "no-cache"}, want: Decision{Storable: true, NoCache: true, Heuristic: true}},
		{name: "no-cache with max-age", resp: []string{"Cache-Control", "no-cache, max-age=60"}, want: nc(60 * time.Second)},
		{name: "qualified no-cache", resp: []string{"Cache-Control", `no-cache="Set-Cookie", max-age=60`}, want: ncf(60*time.Second, "Set-Cookie")},
		{name: "must-revalidate", resp: []string{"Cache-Control", "max-age=60, must-revalidate"}, want: mr(60 * time.Second)},
		{name: "proxy-revalidate", resp: []string{"Cache-Control", "max-age=60, proxy-revalidate"}, want: mr(60 * time.Second)},
		{name: "must-revalidate with argument", resp: []string{"Cache-Control", "max-age=60, must-revalidate=yes"}, want: mr(60 * time.Second)},
		{name: "public with argument ignored", status: 302, resp: []string{"Cache-Control", "public=yes"}, want: no("no-freshness")},
		{name: "must-understand lifts no-store", resp: []string{"Cache-Control", "must-understand, no-store, max-age=60"}, want: fresh(60 * time.Second)},
		{name: "must-understand with unknown status", status: 299, resp: []string{"Cache-Control", "must-understand, no-store, max-age=60"}, want: no("status")},
		{name: "must-understand with argument ignored", resp: []string{"Cache-Control", "must-understand=1, no-store, max-age=60"}, want: no("no-store")},
		{name: "must-understand keeps private", resp: []string{"Cache-Control", "must-understand, no-store, private, max-age=60"}, want: no("private")},
		{name: "no-store in a second line", resp: []string{"Cache-Control", "public, max-age=60", "Cache-Control", "no-store"}, want: no("no-store")},

		// Authorization (RFC 9111 §3.5).
		{name: "Authorization with max-age only", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "max-age=60"}, want: no("authorization")},
		{name: "Authorization heuristic", req: polHeader("Authorization", "Bearer x"), resp: []string{"Last-Modified", lm(time.Hour)}, want: no("authorization")},
		{name: "Authorization with public", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "public, max-age=60"}, want: fresh(60 * time.Second)},
		{name: "Authorization with s-maxage", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "s-maxage=60"}, want: mr(60 * time.Second)},
		{name: "Authorization with must-revalidate", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "must-revalidate, max-age=60"}, want: mr(60 * time.Second)},
		{name: "Authorization with proxy-revalidate only", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "proxy-revalidate, max-age=60"}, want: no("authorization")},
		{name: "Authorization with no-cache", req: polHeader("Authorization", "Bearer x"), resp: []string{"Cache-Control", "no-cache, max-age=60"}, want: no("authorization")},
		{name: "Authorization empty value", req: polHeader("Authorization", ""), resp: []string{"Cache-Control", "max-age=60"}, want: no("authorization")},

		// Vary, Set-Cookie.
		{name: "Vary star", resp: []string{"Cache-Control", "max-age=60", "Vary", "*"}, want: no("vary-star")},
		{name: "Vary star in list", resp: []string{"Cache-Control", "max-age=60", "Vary", "Accept", "Vary", "Accept-Language, * "}, want: no("vary-star")},
		{name: "Vary names", resp: []string{"Cache-Control", "max-age=60", "Vary", "Accept-Encoding"}, want: fresh(60 * time.Second)},
		{name: "Set-Cookie", resp: []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, want: no("set-cookie")},
		{name: "Set-Cookie with public s-maxage", resp: []string{"Cache-Control", "public, s-maxage=60", "Set-Cookie", "a=b"}, want: no("set-cookie")},

		// Request side and methods.
		{name: "request no-store", req: polHeader("Cache-Control", "no-store"), resp: []string{"Cache-Control", "max-age=60"}, want: no("request-no-store")},
		{name: "request no-store with argument", req: polHeader("Cache-Control", "no-store=1"), resp: []string{"Cache-Control", "max-age=60"}, want: no("request-no-store")},
		{name: "request no-store second line", req: polHeader("Cache-Control", "max-age=0", "Cache-Control", "NO-STORE"), resp: []string{"Cache-Control", "max-age=60"}, want: no("request-no-store")},
		{name: "request no-cache still stores", req: polHeader("Cache-Control", "no-cache", "Pragma", "no-cache"), resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "request malformed max-age still stores", req: polHeader("Cache-Control", "max-age"), resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "HEAD", method: "HEAD", resp: []string{"Cache-Control", "max-age=60"}, want: fresh(60 * time.Second)},
		{name: "POST with max-age", method: "POST", resp: []string{"Cache-Control", "max-age=60"}, want: no("method")},
		{name: "PUT", method: "PUT", resp: []string{"Cache-Control", "max-age=60"}, want: no("method")},
		{name: "lower-case get is another method", method: "get", resp: []string{"Cache-Control", "max-age=60"}, want: no("method")},
		{name: "method reported before no-store", method: "DELETE", resp: []string{"Cache-Control", "no-store"}, want: no("method")},
		{name: "request-no-store before status", req: polHeader("Cache-Control", "no-store"), status: 206, want: no("request-no-store")},
		{name: "status before no-store", status: 304, resp: []string{"Cache-Control", "no-store"}, want: no("status")},
		{name: "no-store before private", resp: []string{"Cache-Control", "private, no-store"}, want: no("no-store")},
		{name: "authorization before set-cookie", req: polHeader("Authorization", "x"), resp: []string{"Set-Cookie", "a=b", "Vary", "*"}, want: no("authorization")},
		{name: "vary-star before set-cookie", resp: []string{"Set-Cookie", "a=b", "Vary", "*"}, want: no("vary-star")},
		{name: "set-cookie before no-freshness", status: 302, resp: []string{"Set-Cookie", "a=b"}, want: no("set-cookie")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			rh := polHeader(tt.resp...)
			if !tt.noDate {
				rh.Set("Date", date)
			}
			req := &http.Request{Method: method, Header: tt.req}
			if req.Header == nil {
				req.Header = http.Header{}
			}
			resp := &http.Response{StatusCode: status, Header: rh}
			got := tt.policy.evaluate(req, resp, polNow)
			if tt.want.Storable && tt.want.StaleIfError == 0 {
				tt.want.StaleIfError = DefaultStaleIfError // every storable response gets the default window
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("evaluate = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyEvaluateUsesWallClockWithoutDate(t *testing.T) {
	req := &http.Request{Method: http.MethodGet, Header: http.Header{}}
	resp := &http.Response{StatusCode: 200, Header: polHeader("Expires", polDate(time.Now().Add(2*time.Hour)))}
	got := Policy{}.Evaluate(req, resp)
	if !got.Storable || got.Lifetime < 2*time.Hour-5*time.Second || got.Lifetime > 2*time.Hour {
		t.Errorf("Evaluate = %+v, want storable with lifetime about 2h", got)
	}
}

func TestPolicyNilRequest(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: polHeader("Cache-Control", "max-age=60")}
	if got := (Policy{}).evaluate(nil, resp, polNow); got.Storable || got.Reason != "method" {
		t.Errorf("no request at all: %+v, want not storable, method", got)
	}
	resp.Request = &http.Request{Method: http.MethodGet, Header: polHeader("Authorization", "x")}
	if got := (Policy{}).evaluate(nil, resp, polNow); got.Reason != "authorization" {
		t.Errorf("resp.Request fallback: %+v, want authorization", got)
	}
	if got := (Policy{}).evaluate(resp.Request, nil, polNow); got.Storable || got.Reason != "status" {
		t.Errorf("nil response: %+v, want not storable, status", got)
	}
	// Nil header maps are fine.
	got := Policy{}.evaluate(&http.Request{Method: http.MethodGet}, &http.Response{StatusCode: 200}, polNow)
	if want := (Decision{Storable: true, Heuristic: true, StaleIfError: DefaultStaleIfError}); !reflect.DeepEqual(got, want) {
		t.Errorf("nil headers: %+v, want %+v", got, want)
	}
}

func TestPolicyDoesNotMutate(t *testing.T) {
	req := &http.Request{Method: http.MethodGet, Header: polHeader(
		"Authorization", "x", "Cache-Control", "max-age=0", "Cache-Control", "no-store")}
	resp := &http.Response{StatusCode: 200, Header: polHeader(
		"Cache-Control", `public, max-age = 60, private="Set-Cookie"`, "Cache-Control", "s-maxage=1",
		"Expires", "0", "Date", "garbage", "Last-Modified", polDate(polT0), "Vary", "*", "Set-Cookie", "a=b")}
	reqBefore, respBefore := req.Header.Clone(), resp.Header.Clone()
	Policy{}.Evaluate(req, resp)
	if !reflect.DeepEqual(req.Header, reqBefore) || !reflect.DeepEqual(resp.Header, respBefore) {
		t.Errorf("Evaluate changed headers:\nreq  %v\nresp %v", req.Header, resp.Header)
	}
}

func TestPolicyReasonOrderIsTheDocumentedSet(t *testing.T) {
	want := []string{"method", "request-no-store", "status", "no-store", "private",
		"authorization", "vary-star", "set-cookie", "no-freshness"}
	if !slices.Equal(policyReasonOrder[:], want) {
		t.Errorf("policyReasonOrder = %v, want %v", policyReasonOrder, want)
	}
}

// The TestPolicyCorrects_* tests each show one place where
// pquerna/cachecontrol (called the way its README suggests, for a shared
// cache) disagrees with RFC 9111, and that Evaluate corrects it. If pquerna
// is upgraded and a check on its behaviour fails, the correction may no
// longer be needed.

// polPQ is pquerna's answer: reasons not to store, lifetime from now, error.
type polPQ struct {
	reasons  []cacheobject.Reason
	lifetime time.Duration
	err      error
}

// polBoth runs pquerna and Evaluate on the same exchange. Date is now, so
// pquerna's time.Now-based lifetime is comparable.
func polBoth(t *testing.T, method string, reqH http.Header, status int, respKV ...string) (polPQ, Decision) {
	t.Helper()
	if reqH == nil {
		reqH = http.Header{}
	}
	now := time.Now()
	respH := polHeader(respKV...)
	if len(respH.Values("Date")) == 0 {
		respH.Set("Date", polDate(now))
	}
	req := &http.Request{Method: method, Header: reqH}
	resp := &http.Response{StatusCode: status, Header: respH}
	reasons, exp, err := cachecontrol.CachableResponse(req, resp, cachecontrol.Options{PrivateCache: false})
	var pq polPQ
	pq.reasons, pq.err = reasons, err
	if !exp.IsZero() {
		pq.lifetime = time.Until(exp).Round(time.Minute)
	}
	return pq, Policy{}.evaluate(req, resp, now)
}

// polWant compares a Decision with want, which, when storable and naming
// no stale-if-error window, gets the default one.
func polWant(t *testing.T, got, want Decision) {
	t.Helper()
	if want.Storable && want.StaleIfError == 0 {
		want.StaleIfError = DefaultStaleIfError
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evaluate = %+v, want %+v", got, want)
	}
}

func polPquernaSays(t *testing.T, ok bool, pq polPQ, what string) {
	t.Helper()
	if !ok {
		t.Errorf("pquerna no longer %s (got %+v); revisit this correction", what, pq)
	}
}

func TestPolicyCorrects_MultipleFieldLines(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "public, max-age=60", "Cache-Control", "no-store")
	polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "ignores a second Cache-Control line")
	polWant(t, got, Decision{Reason: "no-store"})
}

func TestPolicyCorrects_MalformedDirective(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "max-age=abc")
	polPquernaSays(t, pq.err != nil, pq, "fails on max-age=abc")
	polWant(t, got, Decision{Storable: true}) // stale on arrival

	pq, got = polBoth(t, "GET", nil, 200, "Cache-Control", `no-store="x", max-age=60`)
	polPquernaSays(t, pq.err != nil, pq, "fails on no-store with an argument")
	polWant(t, got, Decision{Reason: "no-store"})

	pq, got = polBoth(t, "GET", polHeader("Cache-Control", "max-age"), 200, "Cache-Control", "max-age=60")
	polPquernaSays(t, pq.err != nil, pq, "fails on a malformed request directive")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Minute})
}

func TestPolicyCorrects_UnquotedFieldList(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "no-cache=Set-Cookie,max-age=600")
	polPquernaSays(t, pq.err == nil && pq.lifetime == 0, pq, "swallows max-age after an unquoted no-cache value")
	polWant(t, got, Decision{Storable: true, Lifetime: 10 * time.Minute, NoCacheFields: []string{"Set-Cookie"}})
}

func TestPolicyCorrects_DuplicateDirective(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "max-age=60, max-age=3600")
	polPquernaSays(t, pq.err == nil && pq.lifetime == time.Hour, pq, "keeps the last max-age")
	polWant(t, got, Decision{Storable: true})
}

func TestPolicyCorrects_SpacesAroundEquals(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "max-age = 60")
	polPquernaSays(t, pq.err != nil, pq, "fails on spaces around '='")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Minute})
}

func TestPolicyCorrects_InvalidExpires(t *testing.T) {
	long := polDate(time.Now().Add(-100 * 24 * time.Hour))
	for _, exp := range []string{"0", "-1", "tomorrow"} {
		pq, got := polBoth(t, "GET", nil, 200, "Expires", exp, "Last-Modified", long)
		polPquernaSays(t, pq.err == nil && pq.lifetime == 24*time.Hour, pq, "falls back to the heuristic for Expires: "+exp)
		polWant(t, got, Decision{Storable: true})
	}
	pq, got := polBoth(t, "GET", nil, 302, "Expires", "")
	polPquernaSays(t, len(pq.reasons) == 1 && pq.reasons[0] == cacheobject.ReasonResponseUncachableByDefault, pq, "ignores an empty Expires")
	polWant(t, got, Decision{Storable: true})

	later, sooner := polDate(time.Now().Add(2*time.Hour)), polDate(time.Now().Add(time.Hour))
	pq, got = polBoth(t, "GET", nil, 200, "Expires", later, "Expires", sooner)
	polPquernaSays(t, pq.lifetime == 2*time.Hour, pq, "uses the first of disagreeing Expires lines")
	polWant(t, got, Decision{Storable: true})
}

func TestPolicyCorrects_InvalidDate(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Date", "garbage", "Cache-Control", "max-age=60")
	polPquernaSays(t, pq.err != nil, pq, "fails on an invalid Date")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Minute})
}

func TestPolicyCorrects_InvalidLastModified(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Last-Modified", "garbage")
	polPquernaSays(t, pq.err != nil, pq, "fails on an invalid Last-Modified")
	polWant(t, got, Decision{Storable: true, Heuristic: true})
}

func TestPolicyCorrects_HeuristicUsesDate(t *testing.T) {
	// A response generated in 2001, ten hours after its last change, and
	// evaluated today: its heuristic lifetime is one hour, not 24.
	date := time.Date(2001, 1, 1, 10, 0, 0, 0, time.UTC)
	pq, got := polBoth(t, "GET", nil, 200, "Date", polDate(date), "Last-Modified", polDate(date.Add(-10*time.Hour)))
	polPquernaSays(t, pq.lifetime == 24*time.Hour, pq, "measures the heuristic from time.Now")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Hour, Heuristic: true})
}

func TestPolicyCorrects_HeuristicStatus(t *testing.T) {
	lm := polDate(time.Now().Add(-100 * time.Hour))
	pq, got := polBoth(t, "GET", nil, 302, "Cache-Control", "public", "Last-Modified", lm)
	polPquernaSays(t, len(pq.reasons) == 0 && pq.lifetime == 10*time.Hour, pq, "applies its heuristic to a public 302")
	polWant(t, got, Decision{Storable: true})

	pq, got = polBoth(t, "GET", nil, 500, "Cache-Control", "public", "Last-Modified", lm)
	polPquernaSays(t, len(pq.reasons) == 0 && pq.lifetime == 10*time.Hour, pq, "applies its heuristic to a public 500")
	polWant(t, got, Decision{Storable: true})
}

func TestPolicyCorrects_Status308(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 308, "Last-Modified", polDate(time.Now().Add(-10*time.Hour)))
	polPquernaSays(t, len(pq.reasons) == 1 && pq.reasons[0] == cacheobject.ReasonResponseUncachableByDefault, pq, "refuses a 308 without freshness")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Hour, Heuristic: true})
}

func TestPolicyCorrects_StatusNotStored(t *testing.T) {
	for _, status := range []int{100, 206, 304, 412, 421} {
		pq, got := polBoth(t, "GET", nil, status, "Cache-Control", "public, max-age=60")
		polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "stores status "+http.StatusText(status))
		polWant(t, got, Decision{Reason: "status"})
	}
	// Statuses edged does not recognise: stored as §3 says, agreeing with
	// pquerna here.
	for _, status := range []int{299, 432, 599} {
		pq, got := polBoth(t, "GET", nil, status, "Cache-Control", "public, max-age=60")
		polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "stores status "+strconv.Itoa(status))
		polWant(t, got, Decision{Storable: true, Lifetime: time.Minute})
	}
}

func TestPolicyCorrects_Method(t *testing.T) {
	pq, got := polBoth(t, "POST", nil, 200, "Cache-Control", "max-age=60")
	polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "stores POST with explicit freshness")
	polWant(t, got, Decision{Reason: "method"})
}

func TestPolicyCorrects_MustUnderstand(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "must-understand, no-store, max-age=60")
	polPquernaSays(t, len(pq.reasons) == 1 && pq.reasons[0] == cacheobject.ReasonResponseNoStore, pq, "ignores must-understand")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Minute})

	_, got = polBoth(t, "GET", nil, 206, "Cache-Control", "must-understand, no-store, max-age=60")
	polWant(t, got, Decision{Reason: "status"})
}

func TestPolicyCorrects_EmptyAuthorization(t *testing.T) {
	pq, got := polBoth(t, "GET", polHeader("Authorization", ""), 200, "Cache-Control", "max-age=60")
	polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "ignores an empty Authorization")
	polWant(t, got, Decision{Reason: "authorization"})
}

func TestPolicyCorrects_VaryStar(t *testing.T) {
	pq, got := polBoth(t, "GET", nil, 200, "Cache-Control", "max-age=60", "Vary", "Accept, *")
	polPquernaSays(t, pq.err == nil && len(pq.reasons) == 0, pq, "stores Vary: *")
	polWant(t, got, Decision{Reason: "vary-star"})
}

// The TestPolicyChoice_* tests pin the documented choices where the RFC
// leaves room.

func TestPolicyChoice_QualifiedPrivateNotStored(t *testing.T) {
	_, got := polBoth(t, "GET", nil, 200, "Cache-Control", `public, s-maxage=60, private="X-User"`)
	polWant(t, got, Decision{Reason: "private"})
}

// TestPolicyChoice_QualifiedNoCache checks RFC 9111 §5.2.2.4's qualified
// form: the response is stored, reusable without validation, and the
// fields it names are listed (canonical, once each) for removal; a list
// that cannot be read, or an unqualified no-cache beside it, means
// no-cache for the whole response.
func TestPolicyChoice_QualifiedNoCache(t *testing.T) {
	fields := func(names ...string) Decision {
		return Decision{Storable: true, Lifetime: time.Minute, NoCacheFields: names}
	}
	whole := Decision{Storable: true, Lifetime: time.Minute, NoCache: true}
	tests := []struct {
		cc   string
		want Decision
	}{
		{`max-age=60, no-cache="X-Debug, X-Trace"`, fields("X-Debug", "X-Trace")},
		{`max-age=60, no-cache="x-debug"`, fields("X-Debug")},
		{`max-age=60, no-cache=X-Debug`, fields("X-Debug")},
		{`max-age=60, no-cache="X-Debug", no-cache="X-Trace, x-debug"`, fields("X-Debug", "X-Trace")},
		{`max-age=60, no-cache=" X-Debug ,, X-Trace "`, fields("X-Debug", "X-Trace")},
		{`max-age=60, no-cache="X-Debug", no-cache`, whole},
		{`max-age=60, no-cache=""`, whole},
		{`max-age=60, no-cache="X Debug"`, whole},
		{`max-age=60, no-cache="X-Debug`, whole},
		{`max-age=60, no-cache="X-\Debug"`, whole},
	}
	for _, tt := range tests {
		_, got := polBoth(t, "GET", nil, 200, "Cache-Control", tt.cc)
		t.Run(tt.cc, func(t *testing.T) { polWant(t, got, tt.want) })
	}
}

func TestPolicyChoice_SetCookieNeverStored(t *testing.T) {
	_, got := polBoth(t, "GET", nil, 200, "Cache-Control", "public, s-maxage=600, must-revalidate", "Set-Cookie", "session=1")
	polWant(t, got, Decision{Reason: "set-cookie"})
}

func TestPolicyChoice_DuplicatesMostRestrictive(t *testing.T) {
	_, got := polBoth(t, "GET", nil, 200, "Cache-Control", "s-maxage=60", "Cache-Control", "s-maxage=600")
	polWant(t, got, Decision{Storable: true, MustRevalidate: true})
	_, got = polBoth(t, "GET", nil, 200, "Cache-Control", "public, public, max-age=60, max-age=60, no-cache, no-cache")
	polWant(t, got, Decision{Storable: true, Lifetime: time.Minute, NoCache: true})
}

func TestPolicySplitDirectives(t *testing.T) {
	tests := []struct {
		lines []string
		want  []policyDirective
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{" , ,"}, nil},
		{[]string{"A, b=1"}, []policyDirective{{name: "a"}, {name: "b", value: "1", hasValue: true}}},
		{[]string{`x="a,b\",c", y`}, []policyDirective{{name: "x", value: `"a,b\",c"`, hasValue: true}, {name: "y"}}},
		{[]string{`x="a,b`}, []policyDirective{{name: "x", value: `"a,b`, hasValue: true}}},
		{[]string{`x="a\`}, []policyDirective{{name: "x", value: `"a\`, hasValue: true}}},
		{[]string{"bad name=1, ok", "max-age =\t7"}, []policyDirective{{name: "ok"}, {name: "max-age", value: "7", hasValue: true}}},
		{[]string{"e="}, []policyDirective{{name: "e", hasValue: true}}},
	}
	for _, tt := range tests {
		if got := policySplitDirectives(tt.lines); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("policySplitDirectives(%q) = %+v, want %+v", tt.lines, got, tt.want)
		}
	}
}

var polReasons = map[string]bool{
	"method": true, "request-no-store": true, "status": true, "no-store": true, "private": true,
	"authorization": true, "vary-star": true, "set-cookie": true, "no-freshness": true,
}

func FuzzEvaluate(f *testing.F) {
	f.Add("max-age=60", "", polDate(polT0), "", "", uint16(200), false)
	f.Add(`s-maxage="10", max-age=5, private="a,b`, "0", "garbage", polDate(polT0), "no-store", uint16(206), true)
	f.Add("max-age=99999999999999999999, max-age=1", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "max-stale", uint16(308), false)
	f.Add("public,,,=,\"", polDate(polT0.Add(time.Hour)), "", "Mon, 01 Jan 0001 00:00:00 GMT", "max-age=\\", uint16(404), true)
	f.Add("must-understand, no-store", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "", "", uint16(200), false)
	f.Fuzz(func(t *testing.T, cc, expires, date, lastModified, reqCC string, status uint16, auth bool) {
		resp := &http.Response{StatusCode: int(status), Header: http.Header{}}
		for _, kv := range [][2]string{{"Cache-Control", cc}, {"Expires", expires}, {"Date", date}, {"Last-Modified", lastModified}} {
			if kv[1] != "" {
				resp.Header.Set(kv[0], kv[1])
			}
		}
		req := &http.Request{Method: http.MethodGet, Header: http.Header{}}
		if reqCC != "" {
			req.Header.Set("Cache-Control", reqCC)
		}
		if auth {
			req.Header.Set("Authorization", "x")
		}
		for _, p := range []Policy{{}, {DefaultTTL: time.Hour}, {HeuristicFraction: 1e300, HeuristicMax: -1}} {
			d := p.evaluate(req, resp, polNow)
			if d.Lifetime < 0 {
				t.Fatalf("negative lifetime: %+v", d)
			}
			if d.Storable != (d.Reason == "") {
				t.Fatalf("Storable and Reason disagree: %+v", d)
			}
			if !d.Storable && (!polReasons[d.Reason] || !reflect.DeepEqual(d, Decision{Reason: d.Reason})) {
				t.Fatalf("bad refusal: %+v", d)
			}
			if d2 := p.evaluate(req, resp, polNow); !reflect.DeepEqual(d2, d) {
				t.Fatalf("not deterministic: %+v then %+v", d, d2)
			}
		}
	})
}

// TestPolicyStaleIfErrorWindow checks the stale-if-error window a
// storable response gets (RFC 5861 §4): its own directive, else the
// site's default, which is a day when the Policy sets none and nothing
// when it is negative.
func TestPolicyStaleIfErrorWindow(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		cc     string
		want   time.Duration
	}{
		{name: "zero Policy: a day", cc: "max-age=60", want: 24 * time.Hour},
		{name: "site window", policy: Policy{StaleIfError: time.Minute}, cc: "max-age=60", want: time.Minute},
		{name: "negative: none", policy: Policy{StaleIfError: -1}, cc: "max-age=60", want: 0},
		{name: "the response's window beats the default", cc: "max-age=60, stale-if-error=30", want: 30 * time.Second},
		{name: "the response's window beats the site's", policy: Policy{StaleIfError: time.Hour}, cc: "max-age=60, stale-if-error=30", want: 30 * time.Second},
		{name: "the response's window with the default disabled", policy: Policy{StaleIfError: -1}, cc: "max-age=60, stale-if-error=30", want: 30 * time.Second},
		{name: "stale-if-error=0 is no window", cc: "max-age=60, stale-if-error=0", want: 0},
		{name: "an invalid stale-if-error is ignored", cc: "max-age=60, stale-if-error=soon", want: 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: polHeader("Cache-Control", tt.cc, "Date", polDate(polT0))}
			got := tt.policy.evaluate(&http.Request{Method: http.MethodGet, Header: http.Header{}}, resp, polNow)
			if !got.Storable || got.StaleIfError != tt.want {
				t.Errorf("evaluate = %+v, want StaleIfError %v", got, tt.want)
			}
		})
	}
}

// fixedOverride decides ttl for status, and nothing for any other.
type fixedOverride struct {
	status int
	ttl    time.Duration
}

func (o fixedOverride) Lifetime(status int, lifetime time.Duration, explicit bool) (time.Duration, bool) {
	if status == o.status {
		return o.ttl, true
	}
	return lifetime, false
}

// TestPolicyOverride: a rule's lifetime replaces the origin's for
// storable responses, makes a response lacking only freshness storable,
// stops storing with 0, and never overrides no-store, private or
// Set-Cookie.
func TestPolicyOverride(t *testing.T) {
	req := &http.Request{Method: http.MethodGet, Header: http.Header{}}
	tests := []struct {
		name     string
		status   int
		fields   []string
		o        fixedOverride
		storable bool
		reason   string
		lifetime time.Duration
	}{
		{"replaces explicit", 200, []string{"Cache-Control", "max-age=60"}, fixedOverride{200, time.Hour}, true, "", time.Hour},
		{"not deciding keeps origin's", 200, []string{"Cache-Control", "max-age=60"}, fixedOverride{404, time.Hour}, true, "", time.Minute},
		{"no freshness made storable", 500, nil, fixedOverride{500, 10 * time.Second}, true, "", 10 * time.Second},
		{"no freshness stays without a decision", 500, nil, fixedOverride{404, time.Hour}, false, "no-freshness", 0},
		{"zero stops storing", 200, []string{"Cache-Control", "max-age=60"}, fixedOverride{200, 0}, false, "rule", 0},
		{"no-store wins", 200, []string{"Cache-Control", "no-store"}, fixedOverride{200, time.Hour}, false, "no-store", 0},
		{"private wins", 200, []string{"Cache-Control", "private, max-age=60"}, fixedOverride{200, time.Hour}, false, "private", 0},
		{"set-cookie wins", 200, []string{"Set-Cookie", "a=b"}, fixedOverride{200, time.Hour}, false, "set-cookie", 0},
		{"206 never", 206, []string{"Cache-Control", "max-age=60"}, fixedOverride{206, time.Hour}, false, "status", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: polHeader(tt.fields...)}
			d := Policy{Override: tt.o}.Evaluate(req, resp)
			if d.Storable != tt.storable || d.Reason != tt.reason || d.Lifetime != tt.lifetime {
				t.Errorf("Decision = storable %v reason %q lifetime %v; want %v %q %v", d.Storable, d.Reason, d.Lifetime, tt.storable, tt.reason, tt.lifetime)
			}
		})
	}
}
