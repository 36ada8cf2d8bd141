package load

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency summarises a latency histogram in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Result is the outcome of a run's measured phase, ready for encoding/json.
type Result struct {
	Label       string  `json:"label,omitempty"`
	URL         string  `json:"url"`
	Mode        string  `json:"mode"` // "closed" or "open"
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"` // target req/s in open loop
	Keys        int     `json:"keys"`
	Zipf        float64 `json:"zipf,omitempty"`
	Sizes       string  `json:"sizes"`
	// Elapsed is the measured phase's wall time in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Requests counts every request that ended, with or without an error;
	// Responses those that got a complete response (any status); OK the 2xx.
	Requests  int64 `json:"requests"`
	Responses int64 `json:"responses"`
	OK        int64 `json:"ok"`
	// RPS is Requests per second of Elapsed.
	RPS         float64 `json:"rps"`
	Bytes       int64   `json:"bytes"`
	BytesPerSec float64 `json:"bytes_per_s"`
	// Latency covers complete responses only; in open loop it counts from
	// each request's due time.
	Latency Latency `json:"latency_ms"`
	// Hits, Misses and Unknown classify 2xx responses (see Classify).
	// HitRatio is Hits/(Hits+Misses), or absent when both are 0.
	Hits     int64    `json:"hits"`
	Misses   int64    `json:"misses"`
	Unknown  int64    `json:"unknown"`
	HitRatio *float64 `json:"hit_ratio,omitempty"`
	// Errors counts failed requests by kind: connect, timeout, reset,
	// status_5xx, status_4xx, status_other (1xx/3xx), mismatch, other;
	// ErrorSamples holds the last message of each transport error kind.
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Status counts complete responses by status code.
	Status map[string]int64 `json:"status"`
	// Unsent counts open-loop requests that fell due before the end but
	// could not be sent because all workers were busy.
	Unsent      int64 `json:"unsent,omitempty"`
	Interrupted bool  `json:"interrupted,omitempty"`
	// FirstError and LastError are when the first and the last failed
	// request (of any kind in Errors) ended; zero without errors.
	FirstError time.Time `json:"first_error,omitzero"`
	LastError  time.Time `json:"last_error,omitzero"`
	// Classes holds, per class Config.Class named, the complete responses
	// of that class and their latency; absent without Config.Class.
	Classes map[string]Class `json:"classes,omitempty"`
}

// Class is the share of a run's responses in one class of Config.Class.
type Class struct {
	Responses int64   `json:"responses"`
	Latency   Latency `json:"latency_ms"`
}

// summary summarises h in milliseconds.
func summary(h *Histogram) Latency {
	return Latency{
		Min:  ms(float64(h.Min())),
		Mean: ms(h.Mean()),
		P50:  ms(float64(h.Quantile(0.50))),
		P90:  ms(float64(h.Quantile(0.90))),
		P99:  ms(float64(h.Quantile(0.99))),
		P999: ms(float64(h.Quantile(0.999))),
		Max:  ms(float64(h.Max())),
	}
}

func ms(ns float64) float64 { return ns / float64(time.Millisecond) }

func (r *runner) result(s *workerStats, elapsed time.Duration, unsent int64, interrupted bool) *Result {
	res := &Result{
		Label:        r.cfg.Label,
		URL:          r.cfg.URL,
		Mode:         "closed",
		Concurrency:  r.cfg.Concurrency,
		Keys:         r.cfg.Keys,
		Zipf:         r.cfg.Zipf,
		Sizes:        r.cfg.Sizes.String(),
		Elapsed:      elapsed.Seconds(),
		Responses:    int64(s.hist.Count()),
		OK:           s.ok,
		Bytes:        s.bytes,
		Hits:         s.hits,
		Misses:       s.misses,
		Unknown:      s.unknown,
		Errors:       map[string]int64{},
		ErrorSamples: map[string]string{},
		Status:       map[string]int64{},
		Unsent:       unsent,
		Interrupted:  interrupted,
		Latency:      summary(&s.hist),
		FirstError:   s.firstErrAt,
		LastError:    s.lastErrAt,
	}
	if r.cfg.Class != nil {
		res.Classes = map[string]Class{}
		for c, h := range s.classes {
			res.Classes[c] = Class{Responses: int64(h.Count()), Latency: summary(h)}
		}
	}
	if r.cfg.Rate > 0 {
		res.Mode, res.Rate = "open", r.cfg.Rate
	}
	res.Requests = res.Responses
	for i, n := range s.errs {
		if n > 0 {
			res.Errors[errNames[i]] = n
			if s.lastErr[i] != "" {
				res.ErrorSamples[errNames[i]] = s.lastErr[i]
			}
			if i != errStatus5xx && i != errStatus4xx && i != errStatusOther {
				res.Requests += n // transport errors got no response
			}
		}
	}
	for c, n := range s.status {
		res.Status[strconv.Itoa(c)] = n
	}
	if sec := elapsed.Seconds(); sec > 0 {
		res.RPS = float64(res.Requests) / sec
		res.BytesPerSec = float64(res.Bytes) / sec
	}
	if s.hits+s.misses > 0 {
		h := float64(s.hits) / float64(s.hits+s.misses)
		res.HitRatio = &h
	}
	return res
}

// ErrorCount returns the number of failed requests of all kinds.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

func human(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// WriteTable prints r as a human-readable table.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Label != "" {
		fmt.Fprintf(tw, "run\t%s\n", r.Label)
	}
	fmt.Fprintf(tw, "target\t%s\n", r.URL)
	keys := fmt.Sprintf("%d keys, uniform", r.Keys)
	if r.Zipf > 0 {
		keys = fmt.Sprintf("%d keys, zipf s=%g", r.Keys, r.Zipf)
	}
	if r.Mode == "open" {
		fmt.Fprintf(tw, "load\topen loop at %g req/s, at most %d in flight; %s; sizes %s\n", r.Rate, r.Concurrency, keys, r.Sizes)
	} else {
		fmt.Fprintf(tw, "load\tclosed loop, %d workers; %s; sizes %s\n", r.Concurrency, keys, r.Sizes)
	}
	fmt.Fprintf(tw, "requests\t%d in %.2fs = %.0f req/s; %d complete responses, %d 2xx; %s/s\n",
		r.Requests, r.Elapsed, r.RPS, r.Responses, r.OK, human(r.BytesPerSec))
	l := r.Latency
	fmt.Fprintf(tw, "latency ms\tp50 %.3f\tp90 %.3f\tp99 %.3f\tp99.9 %.3f\tmax %.3f\tmean %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	cache := "no cache headers seen"
	if r.HitRatio != nil {
		cache = fmt.Sprintf("hit ratio %.2f%% (%d hits, %d misses, %d unknown)", 100**r.HitRatio, r.Hits, r.Misses, r.Unknown)
	}
	fmt.Fprintf(tw, "cache\t%s\n", cache)
	errs := "none"
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range errNames {
			if n := r.Errors[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", k, n))
			}
		}
		errs = strings.Join(parts, ", ")
	}
	fmt.Fprintf(tw, "errors\t%s\n", errs)
	samples := make([]string, 0, len(r.ErrorSamples))
	for k := range r.ErrorSamples {
		samples = append(samples, k)
	}
	slices.Sort(samples)
	for _, k := range samples {
		fmt.Fprintf(tw, "  last %s\t%s\n", k, r.ErrorSamples[k])
	}
	classes := make([]string, 0, len(r.Classes))
	for c := range r.Classes {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range classes {
		cl := r.Classes[c]
		fmt.Fprintf(tw, "class %s\t%d responses\tp50 %.3f\tp99 %.3f\tmax %.3f\tmean %.3f\n", c, cl.Responses, cl.Latency.P50, cl.Latency.P99, cl.Latency.Max, cl.Latency.Mean)
	}
	if r.Unsent > 0 {
		fmt.Fprintf(tw, "unsent\t%d requests fell due but never went out (all workers busy)\n", r.Unsent)
	}
	if r.Interrupted {
		fmt.Fprintf(tw, "note\tinterrupted; partial results\n")
	}
	return tw.Flush()
}
