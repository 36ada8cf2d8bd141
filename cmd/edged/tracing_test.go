package main

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver on 127.0.0.1: it decodes
// each export request (protobuf) and keeps its spans, with the resource's
// service.name of each.
type otlpReceiver struct {
	url     string
	mu      sync.Mutex
	spans   []*tracepb.Span
	service []string // service.name of each span's resource
	paths   []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: %s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		rcv.paths = append(rcv.paths, r.URL.Path)
		for _, rs := range req.GetResourceSpans() {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					rcv.spans = append(rcv.spans, s)
					rcv.service = append(rcv.service, service)
				}
			}
		}
		rcv.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	rcv.url = srv.URL
	return rcv
}

// received returns the spans received so far, their services and the
// paths posted to.
func (rcv *otlpReceiver) received() ([]*tracepb.Span, []string, []string) {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]*tracepb.Span(nil), rcv.spans...), append([]string(nil), rcv.service...), append([]string(nil), rcv.paths...)
}

// tracedOrigin is a cacheable origin that keeps the traceparent of each
// request.
type tracedOrigin struct {
	url string
	mu  sync.Mutex
	tps []string
}

func newTracedOrigin(t *testing.T) *tracedOrigin {
	t.Helper()
	o := &tracedOrigin{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.tps = append(o.tps, r.Header.Get("Traceparent"))
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "traced "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

func (o *tracedOrigin) traceparents() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.tps...)
}

// tracingDaemon runs the daemon with tracing on at ratio, exporting to
// rcv, in front of o; stop flushes the spans (the provider's Shutdown).
func tracingDaemon(t *testing.T, rcv *otlpReceiver, o *tracedOrigin, ratio string) (string, func()) {
	t.Helper()
	cfg := writeConfig(t, "log:\n  access: false\ntracing:\n  enabled: true\n  endpoint: "+rcv.url+"\n  sample_ratio: "+ratio+
		"\n  service_name: edged-e2e\nsites:\n  - name: site\n    hosts: [\"*\"]\n    origins:\n      - url: "+o.url+"\n")
	l, _, stop := runDaemon(t, "-config", cfg)
	return "http://" + l.Edge, stop
}

func getWith(t *testing.T, url string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func describeOTLP(spans []*tracepb.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %v trace=%x id=%x parent=%x", s.GetName(), s.GetKind(), s.GetTraceId(), s.GetSpanId(), s.GetParentSpanId())
	}
	return b.String()
}

// The daemon with tracing on exports a miss's four spans and a hit's two
// over OTLP/HTTP to /v1/traces, under its service name, and the origin
// gets a traceparent of the miss's trace whose parent is the origin try's
// span.
func TestTracingExportsOTLP(t *testing.T) {
	rcv := newOTLPReceiver(t)
	o := newTracedOrigin(t)
	base, stop := tracingDaemon(t, rcv, o, "1")
	if resp := getWith(t, base+"/a"); resp.StatusCode != 200 {
		t.Fatalf("miss: %d", resp.StatusCode)
	}
	if resp := getWith(t, base+"/a"); !strings.HasPrefix(resp.Header.Get("Cache-Status"), "edged; hit") {
		t.Fatalf("second request: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}
	stop() // exports what is batched

	spans, services, paths := rcv.received()
	if len(spans) != 6 {
		t.Fatalf("received %d spans, want 6 (4 for the miss, 2 for the hit): %s", len(spans), describeOTLP(spans))
	}
	for i, p := range paths {
		if p != "/v1/traces" {
			t.Errorf("export %d posted to %q, want /v1/traces", i, p)
		}
	}
	for _, s := range services {
		if s != "edged-e2e" {
			t.Errorf("span of service %q, want edged-e2e", s)
		}
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	tps := o.traceparents()
	if len(tps) != 1 {
		t.Fatalf("origin got %d requests, want 1", len(tps))
	}
	parts := strings.Split(tps[0], "-")
	if len(parts) != 4 || parts[3] != "01" {
		t.Fatalf("origin got traceparent %q, want a sampled one", tps[0])
	}
	try := byID[parts[2]]
	if try == nil || try.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || hex.EncodeToString(try.GetTraceId()) != parts[1] {
		t.Fatalf("the origin's traceparent %q names no exported client span of its trace: %s", tps[0], describeOTLP(spans))
	}
	// Walk up from the try: fill, lookup, the request's server span (root).
	want := []struct {
		name string
		kind tracepb.Span_SpanKind
	}{{"cache fill", tracepb.Span_SPAN_KIND_INTERNAL}, {"cache lookup", tracepb.Span_SPAN_KIND_INTERNAL}, {"GET", tracepb.Span_SPAN_KIND_SERVER}}
	s := try
	for _, w := range want {
		p := byID[hex.EncodeToString(s.GetParentSpanId())]
		if p == nil || p.GetName() != w.name || p.GetKind() != w.kind {
			t.Fatalf("parent of %q is not a %v span %q: %s", s.GetName(), w.kind, w.name, describeOTLP(spans))
		}
		s = p
	}
	if len(s.GetParentSpanId()) != 0 {
		t.Errorf("the request's span has a parent %x", s.GetParentSpanId())
	}
}

// At ratio 0 nothing is exported for requests that bring no trace; a
// request with a sampled traceparent is traced anyway (parent-based), in
// the caller's trace, and the origin gets that trace.
func TestTracingRatioZeroFollowsCaller(t *testing.T) {
	rcv := newOTLPReceiver(t)
	o := newTracedOrigin(t)
	base, stop := tracingDaemon(t, rcv, o, "0")
	getWith(t, base+"/untraced")
	getWith(t, base+"/untraced")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	getWith(t, base+"/traced", "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	stop()

	spans, _, _ := rcv.received()
	if len(spans) != 4 {
		t.Fatalf("received %d spans, want the traced miss's 4: %s", len(spans), describeOTLP(spans))
	}
	for _, s := range spans {
		if got := hex.EncodeToString(s.GetTraceId()); got != traceID {
			t.Errorf("span %q in trace %s, want the caller's %s", s.GetName(), got, traceID)
		}
	}
	tps := o.traceparents()
	if len(tps) != 2 || !strings.HasSuffix(tps[0], "-00") || !strings.HasPrefix(tps[1], "00-"+traceID+"-") || !strings.HasSuffix(tps[1], "-01") {
		t.Errorf("origin got traceparents %q, want an unsampled one, then the caller's trace sampled", tps)
	}
}
