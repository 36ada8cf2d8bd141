package main

import (
	"context"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/edged-proxy/edged/internal/config"
)

// tracingSetup is what the daemon builds its OpenTelemetry tracer provider
// from (config key tracing): the OTLP/HTTP exporter's target and headers,
// the sampler's ratio and the service's name.
type tracingSetup struct {
	Enabled  bool
	Host     string // host:port of the collector
	Path     string // the URL path spans are posted to
	Insecure bool   // http, not https
	Ratio    float64
	Service  string
	Headers  map[string]string
}

// tracingSettings maps the tracing keys to a tracingSetup. An endpoint
// without a path posts to /v1/traces, OTLP/HTTP's path for traces.
func tracingSettings(t config.Tracing) tracingSetup {
	ts := tracingSetup{Enabled: t.Enabled, Ratio: t.SampleRatio, Service: t.ServiceName}
	if u, err := url.Parse(t.Endpoint); err == nil { // Validate checked it
		ts.Host, ts.Path, ts.Insecure = u.Host, u.Path, u.Scheme == "http"
	}
	if ts.Path == "" || ts.Path == "/" {
		ts.Path = "/v1/traces"
	}
	for _, h := range t.Headers {
		name, value, _ := strings.Cut(h, ":")
		if ts.Headers == nil {
			ts.Headers = make(map[string]string, len(t.Headers))
		}
		ts.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return ts
}

// newTracerProvider builds the SDK's tracer provider for ts: spans batched
// to the OTLP/HTTP exporter (protobuf), sampled parent-based (a request
// carrying a traceparent follows its caller's decision; a trace started
// here is kept at ts.Ratio, by trace ID). The exporter connects lazily: a
// collector that is down costs dropped spans (logged by the SDK), never a
// failed start or a slower request.
func newTracerProvider(ts tracingSetup, version string) (*sdktrace.TracerProvider, error) {
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(ts.Host), otlptracehttp.WithURLPath(ts.Path)}
	if ts.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if len(ts.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(ts.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, err
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", ts.Service)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ts.Ratio))),
	), nil
}

// startTracing builds the daemon's tracer provider when tracing is on.
func (d *daemon) startTracing() error {
	ts := tracingSettings(d.cfg.Tracing)
	if !ts.Enabled {
		return nil
	}
	tp, err := newTracerProvider(ts, traceServiceVersion())
	if err != nil {
		return err
	}
	d.tracing = tp
	d.log.Info("tracing on", "endpoint", d.cfg.Tracing.Endpoint, "sample_ratio", ts.Ratio)
	return nil
}

// tracer is the tracer of the instrumentation scope pkg (an edged package
// path), or nil with tracing off: the packages then make no tracer calls.
func (d *daemon) tracer(pkg string) trace.Tracer {
	if d.tracing == nil {
		return nil
	}
	return d.tracing.Tracer("github.com/edged-proxy/edged/" + pkg)
}

// stopTracing exports the spans still batched, within a few seconds.
func (d *daemon) stopTracing() {
	if d.tracing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.tracing.Shutdown(ctx); err != nil {
		d.log.Warn("tracing: exporting the last spans", "err", err)
	}
}

// traceServiceVersion is the service.version of the spans: the module
// version the binary was built at, "" when unknown.
func traceServiceVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}
