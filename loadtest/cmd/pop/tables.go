package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// writeHit prints the hit-ratio table, one row per setup with the medians
// over runs, then (c)/(a) and (c) against (b).
func writeHit(w io.Writer, runs [][]hitRow) {
	fmt.Fprintf(w, "\n### hit: cluster hit ratio = 1 − origin fetches / requests\n\n")
	t := &table{header: []string{"setup", "requests", "origin fetches", "hit ratio", "req/s", "p50 ms", "p99 ms", "errors", "peer fetches", "replicas admitted"}}
	n := len(runs[0])
	ratios := make([]float64, n) // median hit ratio per setup; NaN if skipped
	var notes []string
	for i := range n {
		var rs []hitRow
		for _, run := range runs {
			if i < len(run) && run[i].Skipped == "" {
				rs = append(rs, run[i])
			}
		}
		if len(rs) == 0 {
			t.add(runs[0][i].Label, "not run")
			notes = append(notes, runs[0][i].Label+" not run: "+runs[0][i].Skipped)
			ratios[i] = math.NaN()
			continue
		}
		hr := pick(rs, func(r hitRow) float64 { return float64(r.HitRatio) })
		peer, replicas := "–", "–"
		if rs[0].Cluster {
			peer = pick(rs, func(r hitRow) float64 { return r.PeerFetches }).format("%.0f")
			replicas = pick(rs, func(r hitRow) float64 { return r.Replicas }).format("%.0f")
		}
		ratios[i] = hr.Median
		t.add(rs[0].Label,
			pick(rs, func(r hitRow) float64 { return float64(r.Requests) }).format("%.0f"),
			pick(rs, func(r hitRow) float64 { return float64(r.OriginFetches) }).format("%.0f"),
			hr.format("%.4f"),
			pick(rs, func(r hitRow) float64 { return r.RPS }).format("%.0f"),
			pick(rs, func(r hitRow) float64 { return r.P50 }).format("%.2f"),
			pick(rs, func(r hitRow) float64 { return r.P99 }).format("%.2f"),
			pick(rs, func(r hitRow) float64 { return float64(r.Errors) }).format("%.0f"),
			peer, replicas,
		)
	}
	t.write(w)
	for _, s := range notes {
		fmt.Fprintf(w, "\n%s\n", s)
	}
	if n == 3 {
		a, b, c := ratios[0], ratios[1], ratios[2]
		fmt.Fprintf(w, "\n(c)/(a) hit ratio: %s (target ≥ 0.95). (c) − (b): %s points; (c) misses / (b) misses: %s.\n",
			fnum(ratio(c, a), "%.4f"), fnum(100*(c-b), "%+.2f"), fnum(ratio(1-c, 1-b), "%.2f"))
	}
}

// fnum formats v with verb, or "–" for NaN.
func fnum(v float64, verb string) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf(verb, v)
}

func writeCold(w io.Writer, runs []coldResult) {
	fmt.Fprintf(w, "\n### cold: concurrent requests for a never-requested object (PoP)\n\n")
	t := &table{header: []string{"run", "objects", "requests each", "objects with exactly 1 origin fetch", "origin fetches per object", "failed requests"}}
	for i, r := range runs {
		each := 0
		if r.Objects > 0 {
			each = r.Requests / r.Objects
		}
		t.add(strconv.Itoa(i+1), strconv.Itoa(r.Objects), strconv.Itoa(each), strconv.Itoa(r.ExactlyOne), fmt.Sprint(r.Fetches), strconv.Itoa(r.Errors))
	}
	t.write(w)
}

func writeLatency(w io.Writer, runs []latencyResult) {
	fmt.Fprintf(w, "\n### latency: local against peer hits at node A (PoP, hot_threshold 255)\n\n")
	t := &table{header: []string{"class", "responses", "p50 ms", "p99 ms", "mean ms"}}
	for _, c := range []string{classLocal, classPeer, classOther} {
		f := func(g func(r latencyResult) float64) spread { return pick(runs, g) }
		cnt := f(func(r latencyResult) float64 { return float64(r.Classes[c].Responses) })
		if cnt.Median == 0 && c == classOther {
			continue
		}
		t.add(c, cnt.format("%.0f"),
			f(func(r latencyResult) float64 { return r.Classes[c].Latency.P50 }).format("%.3f"),
			f(func(r latencyResult) float64 { return r.Classes[c].Latency.P99 }).format("%.3f"),
			f(func(r latencyResult) float64 { return r.Classes[c].Latency.Mean }).format("%.3f"))
	}
	t.write(w)
	fmt.Fprintf(w, "\nerrors: %s of %s requests\n",
		pick(runs, func(r latencyResult) float64 { return float64(r.Errors) }).format("%.0f"),
		pick(runs, func(r latencyResult) float64 { return float64(r.Requests) }).format("%.0f"))
}

func writeKill(w io.Writer, runs []killResult) {
	fmt.Fprintf(w, "\n### kill: SIGKILL to %s of a PoP under load (64 connections through the balancer)\n\n", runs[0].Victim)
	t := &table{header: []string{"figure", "value", "target"}}
	f := func(g func(r killResult) float64) spread { return pick(runs, g) }
	t.add("requests", f(func(r killResult) float64 { return float64(r.Requests) }).format("%.0f"), "")
	t.add("client errors", f(func(r killResult) float64 { return float64(r.Errors) }).format("%.0f"), "")
	t.add("client errors, % of requests", f(func(r killResult) float64 { return float64(r.ErrorPct) }).format("%.3f"), "≤ 0.5")
	t.add("client connections open to it at the kill", f(func(r killResult) float64 { return float64(r.BrokenConns) }).format("%.0f"), "")
	t.add("first error, s after the kill", f(func(r killResult) float64 { return float64(r.FirstError) }).format("%.2f"), "")
	t.add("last error, s after the kill", f(func(r killResult) float64 { return float64(r.LastError) }).format("%.2f"), "≤ ~2")
	t.add("detection: s until survivors list 2 members", f(func(r killResult) float64 { return float64(r.Detection) }).format("%.2f"), "~1.5")
	t.add("survivors' peer fallbacks to the origin", f(func(r killResult) float64 { return r.Fallbacks }).format("%.0f"), "")
	t.add("sample keys", f(func(r killResult) float64 { return float64(r.SampleKeys) }).format("%.0f"), "")
	t.add("owned by the killed node", f(func(r killResult) float64 { return float64(r.VictimOwned) }).format("%.0f"), "≈ 1/3")
	t.add("keys that changed owner", f(func(r killResult) float64 { return float64(r.Moved) }).format("%.0f"), "= the line above")
	exact := 0
	for _, r := range runs {
		if r.MovedOnlyVictims {
			exact++
		}
	}
	t.add("runs where the moved keys are exactly the killed node's", fmt.Sprintf("%d of %d", exact, len(runs)), "all")
	t.write(w)
	for _, r := range runs {
		if r.Note != "" {
			fmt.Fprintf(w, "\nnote: %s\n", r.Note)
		}
	}
}
