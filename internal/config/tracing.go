package config

import (
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Tracing configures OpenTelemetry tracing: spans for each request, its
// cache lookup, its fill and its origin tries, exported over OTLP/HTTP
// (docs/operations.md, "Tracing").
type Tracing struct {
	// Enabled turns tracing on. Off, no span is made and a client's
	// traceparent reaches the origin unchanged.
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP collector's URL: http or https, host and
	// port, and a path; without a path, /v1/traces.
	Endpoint string `yaml:"endpoint" default:"http://127.0.0.1:4318"`
	// SampleRatio is the share of traces started here that are recorded;
	// a request that carries a traceparent follows its caller's decision
	// (parent-based sampling).
	SampleRatio float64 `yaml:"sample_ratio" default:"0.01" check:"range=[0,1]"`
	// ServiceName is the service.name of the spans.
	ServiceName string `yaml:"service_name" default:"edged"`
	// Headers are sent with every export, as "Name: value" (an API key
	// of a hosted collector, say).
	Headers []string `yaml:"headers"`
}

// tracing checks the tracing keys that tags cannot.
func (v *validator) tracing(t *Tracing) {
	if !t.Enabled {
		return
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.add("tracing.endpoint", "want an http or https URL such as http://127.0.0.1:4318, got %q", t.Endpoint)
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		v.add("tracing.service_name", "required when tracing is enabled")
	}
	for i, h := range t.Headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) || !httpguts.ValidHeaderFieldValue(strings.TrimSpace(value)) {
			v.add("tracing.headers["+strconv.Itoa(i)+"]", `want "Name: value", got %q`, h)
		}
	}
}
