package testkit

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric returns the value of the one series of the family name in g whose
// labels include every pair in labels (name, value, name, value, ...): a
// counter's or gauge's value, or a histogram's sample count. found is false
// when no series matches; a selector that matches more than one series
// fails the test, so a missing label cannot go unnoticed.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) (v float64, found bool) {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("testkit.Metric(%s): labels must be name, value pairs: %q", name, labels)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m.GetLabel(), labels) {
				continue
			}
			if found {
				t.Fatalf("testkit.Metric: more than one %s series has the labels %q", name, labels)
			}
			found = true
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return v, found
}

func hasLabels(have []*dto.LabelPair, want []string) bool {
	for i := 0; i < len(want); i += 2 {
		if !slices.ContainsFunc(have, func(l *dto.LabelPair) bool {
			return l.GetName() == want[i] && l.GetValue() == want[i+1]
		}) {
			return false
		}
	}
	return true
}
