// Package purgetest provides a purge.Invalidator for tests of the purge
// API, its fleet propagation and its command line: it records every
// selector it is given instead of purging anything. Only tests import it.
package purgetest

import (
	"context"
	"slices"
	"sync"

	"github.com/edged-proxy/edged/purge"
)

// Recorder is a purge.Invalidator that records the selectors it is given
// and reports one match per item. The zero value is ready; it is safe for
// concurrent use.
type Recorder struct {
	mu   sync.Mutex
	got  []purge.Selector
	fail error
}

var _ purge.Invalidator = (*Recorder)(nil)

// Purge records sel, or returns the error set by Fail.
func (r *Recorder) Purge(_ context.Context, sel purge.Selector) (purge.Matched, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return purge.Matched{}, r.fail
	}
	r.got = append(r.got, sel)
	return purge.Matched{URLs: len(sel.URLs), Prefixes: len(sel.Prefixes), Tags: len(sel.Tags), Hosts: len(sel.Hosts)}, nil
}

// Fail makes every later Purge fail with err (nil: succeed again).
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// Selectors returns the selectors recorded so far, oldest first.
func (r *Recorder) Selectors() []purge.Selector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// Count is how many recorded selectors name url.
func (r *Recorder) Count(url string) int {
	n := 0
	for _, s := range r.Selectors() {
		for _, u := range s.URLs {
			if u == url {
				n++
			}
		}
	}
	return n
}
