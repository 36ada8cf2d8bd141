package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// spread is one figure over several runs: its median and range.
type spread struct {
	Median, Min, Max float64
	N                int
}

// spreadOf summarises vs; NaNs (figures a run could not produce) are left
// out. The median of an even count is the mean of the middle two.
func spreadOf(vs []float64) spread {
	var v []float64
	for _, x := range vs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{Median: m, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// format prints the median with verb (e.g. "%.1f"), followed by the range
// in brackets when the runs differ.
func (s spread) format(verb string) string {
	if s.N == 0 {
		return "–"
	}
	m := fmt.Sprintf(verb, s.Median)
	if s.N == 1 || s.Min == s.Max {
		return m
	}
	return fmt.Sprintf("%s [%s–%s]", m, fmt.Sprintf(verb, s.Min), fmt.Sprintf(verb, s.Max))
}

// pick collects one figure from each run's record.
func pick[T any](runs []T, f func(T) float64) spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return spreadOf(v)
}

// hitRatio is the cluster hit ratio: the share of requests the origin did
// not see; NaN without requests.
func hitRatio(requests, originFetches int64) float64 {
	if requests <= 0 {
		return math.NaN()
	}
	return 1 - float64(originFetches)/float64(requests)
}

// ratio is a/b, NaN when either is NaN or b is 0.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// pct is n as a percentage of of; NaN when of is 0.
func pct(n, of int64) float64 {
	if of == 0 {
		return math.NaN()
	}
	return 100 * float64(n) / float64(of)
}

// table is a markdown table.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write renders t with its columns padded to line up in plain text too.
func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], len([]rune(c)))
			}
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		return b.String() + "\n"
	}
	var b strings.Builder
	b.WriteString(line(t.header))
	b.WriteString("|")
	for _, n := range width {
		b.WriteString(" " + strings.Repeat("-", max(n, 3)) + " |")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString(line(r))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num is a figure that may be NaN (not measured); it encodes NaN as JSON null.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}
