package purge

import (
	"slices"
	"strings"
	"sync"
)

// store remembers the last n purges this node applied, FIFO: for receipts
// and to apply each fleet purge once.
type store struct {
	mu   sync.Mutex
	m    map[string]*record
	ring []string // ids in insertion order; ring[next] is the oldest
	next int
}

type record struct {
	cmd   Command
	fleet FleetStatus
	nodes map[string]NodeReceipt
}

func newStore(n int) *store {
	return &store{m: make(map[string]*record, n), ring: make([]string, n)}
}

// add records a purge applied by its origin (this node).
func (s *store) add(c Command, fs FleetStatus) {
	s.put(c, fs, NodeReceipt{Node: c.Origin, AppliedAt: c.AppliedAt, Matched: c.Matched})
}

// put records a purge and this node's application of it. It reports false
// when the id was already known (nothing changes then).
func (s *store) put(c Command, fs FleetStatus, nr NodeReceipt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[c.ID]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.m, old)
	}
	s.ring[s.next] = c.ID
	s.next = (s.next + 1) % len(s.ring)
	rec := &record{cmd: c, fleet: fs, nodes: map[string]NodeReceipt{nr.Node: nr}}
	if c.Origin != nr.Node && !c.AppliedAt.IsZero() {
		rec.nodes[c.Origin] = NodeReceipt{Node: c.Origin, AppliedAt: c.AppliedAt, Matched: c.Matched}
	}
	s.m[c.ID] = rec
	return true
}

func (s *store) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	return ok
}

func (s *store) setFleet(id string, fs FleetStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[id]; ok {
		r.fleet = fs
	}
}

func (s *store) receipt(id string) (Receipt, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	if !ok {
		return Receipt{}, false
	}
	rc := Receipt{ID: r.cmd.ID, Selector: r.cmd.Selector, Origin: r.cmd.Origin, AcceptedAt: r.cmd.AcceptedAt, Fleet: r.fleet}
	for _, n := range r.nodes {
		rc.Nodes = append(rc.Nodes, n)
	}
	sortNodes(rc.Nodes)
	return rc, true
}

func sortNodes(ns []NodeReceipt) {
	slices.SortFunc(ns, func(a, b NodeReceipt) int { return strings.Compare(a.Node, b.Node) })
}

// mergeNodes unions two receipt lists by node; a wins on conflict.
func mergeNodes(a, b []NodeReceipt) []NodeReceipt {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.ContainsFunc(out, func(x NodeReceipt) bool { return x.Node == n.Node }) {
			out = append(out, n)
		}
	}
	sortNodes(out)
	return out
}
