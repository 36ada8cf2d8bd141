package cache

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (Config.Tracer; docs/operations.md, "Tracing"). Every Get is a
// "cache lookup" span, a child of the span in its context (the edge's
// request span): hit or not, why the origin was asked, whether it joined
// another request's fill. A flight's leader records the "cache fill"
// span, a child of its lookup span, and the origin request is sent under
// it, so the origin tries (lb's client spans) are the fill's children. A
// request that joins a fill links its lookup span to the fill's span,
// which is in another request's trace: a link, not a parent, as the fill
// is not part of the joiner's request. With no Tracer nothing here runs.
// The cache imports OpenTelemetry's API only, never the SDK.

// tracedGet is Get with its lookup span.
func (c *Cache) tracedGet(ctx context.Context, r *Request) (Result, error) {
	ctx, span := c.tracer.Start(ctx, "cache lookup", trace.WithSpanKind(trace.SpanKindInternal))
	res, err := c.get(ctx, r)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.Bool("edged.cache.hit", res.Hit),
			attribute.Bool("edged.cache.collapsed", res.Collapsed),
		}
		if res.Fwd != FwdNone {
			attrs = append(attrs, attribute.String("edged.cache.fwd", res.Fwd.String()))
		}
		if res.Detail != DetailNone {
			attrs = append(attrs, attribute.String("edged.cache.detail", res.Detail.String()))
		}
		if res.NotStored != "" {
			attrs = append(attrs, attribute.String("edged.cache.not_stored", res.NotStored))
		}
		span.SetAttributes(attrs...)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
	return res, err
}

// linkFill links the lookup span in ctx to the span of the fill f that
// the lookup joined.
func linkFill(ctx context.Context, f *flight) {
	if f.span != nil && f.span.IsValid() {
		trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: *f.span,
			Attributes: []attribute.KeyValue{attribute.String("edged.link", "joined fill")}})
	}
}

// startFill starts the span of the fill f leads for r (a revalidation
// when stale is set, with HEAD when head is) and returns its context, in
// which the origin request is made, and the function that ends it when
// the fill returns: with what the fill published (the origin's status,
// whether it stored the answer, how many requests joined it).
func (c *Cache) startFill(ctx context.Context, f *flight, r *Request, stale *Entry, head bool) (context.Context, func()) {
	ctx, span := c.tracer.Start(ctx, "cache fill", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.Bool("edged.fill.revalidation", stale != nil)))
	sc := span.SpanContext()
	f.span = &sc
	return ctx, func() {
		if !span.IsRecording() {
			span.End()
			return
		}
		attrs := []attribute.KeyValue{attribute.Int("edged.fill.coalesced", int(f.joined.Load()))}
		if f.published() {
			out := f.out
			attrs = append(attrs, attribute.Bool("edged.fill.stored", out.stored),
				attribute.Bool("edged.fill.recheck_hit", out.hit))
			if out.fwdStatus != 0 {
				attrs = append(attrs, attribute.Int("edged.fill.origin_status", out.fwdStatus))
			}
			if out.upstream != "" {
				attrs = append(attrs, attribute.String("edged.shard", out.upstream))
			}
			if out.notStored != "" {
				attrs = append(attrs, attribute.String("edged.cache.not_stored", out.notStored))
			}
			if out.err != nil {
				span.RecordError(out.err)
				span.SetStatus(codes.Error, out.err.Error())
			}
		}
		if head && stale != nil {
			attrs = append(attrs, attribute.Bool("edged.fill.head", true))
		}
		span.SetAttributes(attrs...)
		span.End()
	}
}
