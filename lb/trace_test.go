package lb_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/lb"
)

// configOrder is a Selector trying the shards in configuration order.
var configOrder = lb.SelectorFunc(func(_ string, _ *http.Request, ups []*lb.Upstream) []*lb.Upstream { return ups })

// A request whose context carries a span gets one client span per try,
// each naming its shard, with the error of a failed try and the status of
// the one that answered; the origin's traceparent names the try that
// reached it. Without a span in the context nothing is traced and the
// request's own traceparent goes through.
func TestTraceTries(t *testing.T) {
	tps := make(chan string, 4)
	live := testOrigin(t, "live")
	live.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tps <- r.Header.Get("Traceparent")
		w.WriteHeader(http.StatusTeapot)
	})
	p := newPool(t, lb.Config{Name: "p", Selector: configOrder,
		Shards: []lb.Shard{{Name: "dead", URL: deadURL(t)}, {Name: "live", URL: live.URL}}})

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ctx, parent := tp.Tracer("test").Start(context.Background(), "fill")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.com/x", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") // replaced
	resp, shard, err := p.Send(req, "k")
	if err != nil || shard != "live" {
		t.Fatalf("Send: shard %q, %v", shard, err)
	}
	resp.Body.Close()
	parent.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want the parent and two tries", len(spans))
	}
	for i, want := range []struct {
		shard  string
		status int64
		err    bool
	}{{"dead", 0, true}, {"live", http.StatusTeapot, false}} {
		s := spans[i]
		if s.SpanKind() != trace.SpanKindClient || s.Name() != "GET" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("try %d: %s %v under %s, want a client GET under the fill", i, s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
		if v := attr(s, "edged.shard").AsString(); v != want.shard {
			t.Errorf("try %d: edged.shard %q, want %q", i, v, want.shard)
		}
		if v := attr(s, "http.response.status_code").AsInt64(); v != want.status {
			t.Errorf("try %d: status %d, want %d", i, v, want.status)
		}
		if failed := len(s.Events()) > 0; failed != want.err {
			t.Errorf("try %d: error recorded %v, want %v", i, failed, want.err)
		}
	}
	try := spans[1].SpanContext()
	if got, want := <-tps, fmt.Sprintf("00-%s-%s-01", try.TraceID(), try.SpanID()); got != want {
		t.Errorf("origin got traceparent %q, want %q", got, want)
	}

	req, _ = http.NewRequest(http.MethodGet, "http://example.com/x", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, _, err = p.Send(req, "k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.Ended()) != 3 {
		t.Errorf("an untraced request made spans")
	}
	if got := <-tps; got != req.Header.Get("Traceparent") {
		t.Errorf("untraced: origin got traceparent %q, want the request's", got)
	}
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
