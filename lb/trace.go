package lb

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (docs/operations.md, "Tracing"): a try is traced when the
// request's context carries a span (the edge's, or the cache fill's), with
// a tracer of that span's provider, as OpenTelemetry's own HTTP client
// instrumentation does when it is given none. So the pool needs no tracing
// configuration of its own, and with tracing off (no span in the context)
// a try costs one context lookup. lb imports the OpenTelemetry API only,
// never the SDK.

// tracerName names the instrumentation scope of the tries' spans.
const tracerName = "github.com/edged-proxy/edged/lb"

// startTry starts the client span of one try of req on shard s (attempt
// counts from 0), when req's context carries a span; otherwise it returns
// ctx and a nil span.
func startTry(ctx context.Context, req *http.Request, s *shard, attempt int) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", s.host),
		attribute.String("url.scheme", s.scheme),
		attribute.String("url.path", req.URL.Path),
		attribute.String("edged.shard", s.name),
	}
	if attempt > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", attempt))
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// injectTrace writes ctx's span context into hd as W3C Trace Context
// (traceparent, tracestate), replacing any the request carried.
func injectTrace(ctx context.Context, hd http.Header) {
	hd.Del("Traceparent")
	hd.Del("Tracestate")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hd))
}

// endTry ends a try's span with its outcome: the status code, or the
// error (an over-limit try was never sent).
func endTry(span trace.Span, resp *http.Response, err error) {
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case resp != nil:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
		}
	}
	span.End()
}
