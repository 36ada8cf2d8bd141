package edge_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/internal/testkit"
)

// tracedEdge is an edge whose handler and cache record spans in rec,
// sampled by sampler.
func tracedEdge(t *testing.T, sampler sdktrace.Sampler, opts edgeOpts, o *origin) (string, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	opts.tracer = tp.Tracer("edged-test")
	base, _ := newEdge(t, opts, o)
	return base, rec
}

// waitSpans waits until rec holds n ended spans and returns them.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() bool { return len(rec.Ended()) >= n }, fmt.Sprintf("%d ended spans", n))
	return rec.Ended()
}

// spanNamed returns the one span named name of kind, failing otherwise.
func spanNamed(t *testing.T, spans []sdktrace.ReadOnlySpan, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name && s.SpanKind() == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q (%v), want 1; spans: %s", len(found), name, kind, describeSpans(spans))
	}
	return found[0]
}

func describeSpans(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %v id=%s parent=%s", s.Name(), s.SpanKind(), s.SpanContext().SpanID(), s.Parent().SpanID())
	}
	return b.String()
}

// attr returns the value of span attribute key, or an invalid value.
func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q: parent %s in trace %s, want %q (%s in %s)", child.Name(), child.Parent().SpanID(), child.SpanContext().TraceID(),
			parent.Name(), parent.SpanContext().SpanID(), parent.SpanContext().TraceID())
	}
}

// A miss is four spans, each the child of the one before: the request
// (server), the cache lookup, the fill, the origin try (client); the
// origin gets the trace with the try's span as parent. A hit is the
// request and its lookup.
func TestTraceMissAndHit(t *testing.T) {
	o := newOrigin(t, cacheable("traced "))
	base, rec := tracedEdge(t, sdktrace.AlwaysSample(), edgeOpts{}, o)

	resp, body := get(t, base, "GET", "example.com", "/a", "User-Agent", "trace-test")
	if resp.StatusCode != 200 || body != "traced /a" {
		t.Fatalf("miss: %d %q", resp.StatusCode, body)
	}
	spans := waitSpans(t, rec, 4)
	server := spanNamed(t, spans, "GET", trace.SpanKindServer)
	lookup := spanNamed(t, spans, "cache lookup", trace.SpanKindInternal)
	fill := spanNamed(t, spans, "cache fill", trace.SpanKindInternal)
	try := spanNamed(t, spans, "GET", trace.SpanKindClient)
	if server.Parent().IsValid() {
		t.Errorf("server span has a parent %v: the request carried no trace", server.Parent())
	}
	childOf(t, lookup, server)
	childOf(t, fill, lookup)
	childOf(t, try, fill)
	for _, c := range []struct {
		s    sdktrace.ReadOnlySpan
		key  string
		want any
	}{
		{server, "http.request.method", "GET"},
		{server, "url.path", "/a"},
		{server, "server.address", "example.com"},
		{server, "http.response.status_code", int64(200)},
		{server, "edged.site", "test"},
		{server, "edged.cache.result", "miss"},
		{server, "edged.shard", "o0"},
		{server, "user_agent.original", "trace-test"},
		{server, "client.address", "127.0.0.1"},
		{lookup, "edged.cache.hit", false},
		{lookup, "edged.cache.fwd", "uri-miss"},
		{fill, "edged.fill.stored", true},
		{fill, "edged.fill.origin_status", int64(200)},
		{fill, "edged.shard", "o0"},
		{try, "edged.shard", "o0"},
		{try, "http.response.status_code", int64(200)},
	} {
		if got := attr(c.s, c.key).AsInterface(); got != c.want {
			t.Errorf("%s span: %s = %v, want %v", c.s.Name(), c.key, got, c.want)
		}
	}
	want := fmt.Sprintf("00-%s-%s-01", try.SpanContext().TraceID(), try.SpanContext().SpanID())
	if got := o.lastRequest().Header.Get("Traceparent"); got != want {
		t.Errorf("origin got traceparent %q, want %q (the try's span)", got, want)
	}

	rec.Reset()
	resp, _ = get(t, base, "GET", "example.com", "/a")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edged; hit") {
		t.Fatalf("second Cache-Status %q, want a hit", cs)
	}
	spans = waitSpans(t, rec, 2)
	server = spanNamed(t, spans, "GET", trace.SpanKindServer)
	lookup = spanNamed(t, spans, "cache lookup", trace.SpanKindInternal)
	childOf(t, lookup, server)
	if len(spans) != 2 {
		t.Errorf("a hit made %d spans, want 2: %s", len(spans), describeSpans(spans))
	}
	if got := attr(server, "edged.cache.result").AsString(); got != "hit" {
		t.Errorf("hit's server span: edged.cache.result = %q", got)
	}
	if fast := attr(server, "edged.fast_path").AsBool(); fast != (os.Getenv("EDGED_TEST_HTTP1") != "net/http") {
		t.Errorf("hit's server span: edged.fast_path = %v on the %q server", fast, os.Getenv("EDGED_TEST_HTTP1"))
	}
	if !attr(lookup, "edged.cache.hit").AsBool() {
		t.Error("hit's lookup span: edged.cache.hit is not true")
	}
	if !lookup.StartTime().Before(lookup.EndTime()) && !lookup.StartTime().Equal(lookup.EndTime()) ||
		lookup.StartTime().Before(server.StartTime()) || lookup.EndTime().After(server.EndTime()) {
		t.Errorf("lookup [%v, %v] not within the request [%v, %v]", lookup.StartTime(), lookup.EndTime(), server.StartTime(), server.EndTime())
	}
}

// An incoming traceparent is continued: the request's span is its child,
// sampled as the caller decided (the edge's own ratio is 0), on a miss and
// on a hit (which the fast path leaves to the general path), and the
// origin gets the same trace.
func TestTraceContinuesIncomingTraceparent(t *testing.T) {
	o := newOrigin(t, cacheable("traced "))
	base, rec := tracedEdge(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), edgeOpts{}, o)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for i, wantSpans := range []int{4, 2} {
		rec.Reset()
		get(t, base, "GET", "example.com", "/a", "Traceparent", "00-"+traceID+"-"+parentID+"-01", "Tracestate", "vendor=x")
		spans := waitSpans(t, rec, wantSpans)
		server := spanNamed(t, spans, "GET", trace.SpanKindServer)
		if got := server.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("request %d: trace %s, want the caller's %s", i, got, traceID)
		}
		if got := server.Parent().SpanID().String(); got != parentID || !server.Parent().IsRemote() {
			t.Errorf("request %d: parent %s (remote %v), want the caller's %s", i, got, server.Parent().IsRemote(), parentID)
		}
		if got := server.SpanContext().TraceState().Get("vendor"); got != "x" {
			t.Errorf("request %d: tracestate vendor=%q, want x", i, got)
		}
	}
	tp := o.lastRequest().Header.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-"+traceID+"-") || strings.Contains(tp, parentID) || !strings.HasSuffix(tp, "-01") {
		t.Errorf("origin got traceparent %q, want the caller's trace with edged's span", tp)
	}
	if ts := o.lastRequest().Header.Get("Tracestate"); ts != "vendor=x" {
		t.Errorf("origin got tracestate %q, want vendor=x", ts)
	}
}

// At ratio 0 a request without a traceparent records nothing, but the
// origin still gets a trace context (not sampled) to continue.
func TestTraceRatioZeroRecordsNothing(t *testing.T) {
	o := newOrigin(t, cacheable("traced "))
	base, rec := tracedEdge(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), edgeOpts{}, o)
	get(t, base, "GET", "example.com", "/a")
	get(t, base, "GET", "example.com", "/a") // a hit
	if n := len(rec.Started()); n != 0 {
		t.Errorf("%d spans recorded at ratio 0: %s", n, describeSpans(rec.Ended()))
	}
	if tp := o.lastRequest().Header.Get("Traceparent"); !strings.HasSuffix(tp, "-00") || len(tp) != 55 {
		t.Errorf("origin got traceparent %q, want an unsampled one", tp)
	}
}

// With tracing off the edge neither makes spans nor touches trace fields:
// a client's traceparent reaches the origin as sent.
func TestTraceOffPassesTraceparent(t *testing.T) {
	o := newOrigin(t, cacheable("untraced "))
	base, _ := newEdge(t, edgeOpts{}, o)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	get(t, base, "GET", "example.com", "/a", "Traceparent", tp)
	if got := o.lastRequest().Header.Get("Traceparent"); got != tp {
		t.Errorf("origin got traceparent %q, want the client's %q", got, tp)
	}
}

// Requests that join another's fill have no fill span of their own: their
// lookup span links to the leader's fill span (another trace), which
// counts them.
func TestTraceCoalescedWaitersLinkToFill(t *testing.T) {
	o := newOrigin(t, cacheable("shared "))
	reg := prometheus.NewRegistry()
	base, rec := tracedEdge(t, sdktrace.AlwaysSample(), edgeOpts{reg: reg}, o)
	o.Hold()
	const waiters = 3
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); get(t, base, "GET", "example.com", "/c") }()
	o.Await(t, "/c", 1)
	for range waiters {
		wg.Add(1)
		go func() { defer wg.Done(); get(t, base, "GET", "example.com", "/c") }()
	}
	waitJoined(t, reg, waiters)
	o.Release()
	wg.Wait()
	spans := waitSpans(t, rec, 4+2*waiters)
	fill := spanNamed(t, spans, "cache fill", trace.SpanKindInternal)
	if got := attr(fill, "edged.fill.coalesced").AsInt64(); got != waiters {
		t.Errorf("fill span: edged.fill.coalesced = %d, want %d", got, waiters)
	}
	linked := 0
	for _, s := range spans {
		if s.Name() != "cache lookup" || !attr(s, "edged.cache.collapsed").AsBool() {
			continue
		}
		if len(s.Links()) == 1 && s.Links()[0].SpanContext.SpanID() == fill.SpanContext().SpanID() {
			linked++
		}
		if s.SpanContext().TraceID() == fill.SpanContext().TraceID() {
			t.Errorf("a waiter's lookup is in the leader's trace")
		}
	}
	if linked != waiters {
		t.Errorf("%d waiters' lookup spans link to the fill, want %d: %s", linked, waiters, describeSpans(spans))
	}
}

// A pass-through request's origin try is the child of the request span.
func TestTracePassThrough(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	base, rec := tracedEdge(t, sdktrace.AlwaysSample(), edgeOpts{}, o)
	resp, _ := get(t, base, "POST", "example.com", "/p")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	spans := waitSpans(t, rec, 2)
	server := spanNamed(t, spans, "POST", trace.SpanKindServer)
	try := spanNamed(t, spans, "POST", trace.SpanKindClient)
	childOf(t, try, server)
	want := fmt.Sprintf("00-%s-%s-01", try.SpanContext().TraceID(), try.SpanContext().SpanID())
	if got := o.lastRequest().Header.Get("Traceparent"); got != want {
		t.Errorf("origin got traceparent %q, want %q", got, want)
	}
}
