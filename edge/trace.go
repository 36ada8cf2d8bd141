package edge

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/edge/h1"
)

// Tracing (Config.Tracer; docs/operations.md, "Tracing").
//
// The general path starts a server span per request, continuing the trace
// of an incoming W3C traceparent (the SDK's parent-based sampler keeps the
// caller's decision), and ends it in finish with the status, the site and
// the cache result. The cache records its lookup and fill spans under it,
// and the origin request carries the trace (traceparent, tracestate) to
// the origin and to a peer that owns the key.
//
// The fast path records its span too, rather than sending traced requests
// down the general path: a hit answered there would cost some twenty more
// allocations for every request the sampler leaves out, as deciding
// before the span is started is the sampler's job. It starts the span only
// once it is going to answer (backdated to the request's arrival, with the
// cache lookup as a child), so a request it declines has one span, the
// general path's. A request that carries a traceparent is left to the
// general path, which continues its trace. With no Tracer none of this
// runs: the fast path makes no tracer call, and the general path
// allocates nothing more.
//
// edge imports OpenTelemetry's API only, never the SDK: the daemon builds
// the provider (cmd/edged/tracing.go).

// startSpan extracts the trace context r carries and starts the server
// span of r under it; it returns r with the span in its context.
func (h *Handler) startSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("server.address", r.Host),
			attribute.String("network.protocol.version", protoVersion(r.ProtoMajor, r.ProtoMinor)),
		}
		if ua := r.Header.Get("User-Agent"); ua != "" {
			attrs = append(attrs, attribute.String("user_agent.original", ua))
		}
		span.SetAttributes(attrs...)
	}
	return r.WithContext(ctx), span
}

// endSpan completes a request's server span from its session.
func endSpan(span trace.Span, s *Session) {
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String("url.scheme", s.Scheme),
			attribute.String("client.address", s.ClientIP),
			attribute.Int("http.response.status_code", s.Status),
			attribute.Int64("http.response.body.size", s.Bytes),
			attribute.String("edged.cache.result", string(s.CacheResult)),
		}
		if s.Site != nil {
			attrs = append(attrs, attribute.String("edged.site", s.Site.Name))
		}
		if s.Shard != "" {
			attrs = append(attrs, attribute.String("edged.shard", s.Shard))
		}
		if s.Peer != "" {
			attrs = append(attrs, attribute.String("edged.peer", s.Peer))
		}
		span.SetAttributes(attrs...)
		switch {
		case s.Status >= 500:
			// Server spans are errors for 5xx only (OpenTelemetry's HTTP
			// semantic conventions): a 4xx is the client's.
			span.SetStatus(codes.Error, strconv.Itoa(s.Status))
			if s.Err != nil {
				span.RecordError(s.Err)
			}
		case s.Err != nil:
			span.RecordError(s.Err)
		}
	}
	span.End()
}

// protoVersion is network.protocol.version for HTTP major.minor.
func protoVersion(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1"
	case major == 1 && minor == 0:
		return "1.0"
	case major == 2:
		return "2"
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// injectTrace sends the trace of ctx to the origin or peer out goes to,
// replacing the client's traceparent and tracestate (lb replaces it again
// with each try's own span).
func injectTrace(ctx context.Context, hd http.Header) {
	hd.Del("Traceparent")
	hd.Del("Tracestate")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hd))
}

// fastTraced reports whether a fast-path request carries a trace context
// (traceparent): the general path continues it.
func fastTraced(w *h1.FastWriter) bool {
	hd := w.Head()
	for i := range hd.Fields {
		if hd.Fields[i].Is("Traceparent") {
			return true
		}
	}
	return false
}

// fastSpan records the spans of a fast-path answer: its server span, from
// arrival to now, and the cache lookup (arrival to looked) as its child.
func (h *Handler) fastSpan(w *h1.FastWriter, fr *fastReq, s *Session, arrived, looked time.Time) {
	ctx, span := h.tracer.Start(w.Context(), fr.method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(arrived))
	if !span.IsRecording() {
		span.End()
		return
	}
	_, lookup := h.tracer.Start(ctx, "cache lookup", trace.WithTimestamp(arrived),
		trace.WithAttributes(attribute.Bool("edged.cache.hit", true), attribute.Bool("edged.cache.collapsed", false)))
	lookup.End(trace.WithTimestamp(looked))
	span.SetAttributes(
		attribute.String("http.request.method", fr.method),
		attribute.String("url.path", fr.path),
		attribute.String("server.address", fr.host),
		attribute.String("network.protocol.version", protoVersion(1, int(w.Head().Minor))),
		attribute.Bool("edged.fast_path", true),
	)
	endSpan(span, s)
}
