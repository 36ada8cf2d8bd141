package purge

// Recent returns the receipts of the last n purges this node applied
// (its own and, with a fleet, the other nodes'), newest first, as this
// node knows them: the fleet's receipts are not asked for, so that a
// status page polling it costs the fleet nothing.
func (p *Purger) Recent(n int) []Receipt {
	return p.store.recent(n)
}

// recent returns the last n records' receipts, newest first.
func (s *store) recent(n int) []Receipt {
	s.mu.Lock()
	ids := make([]string, 0, min(n, len(s.ring)))
	for i := 1; i <= len(s.ring) && len(ids) < n; i++ {
		id := s.ring[(s.next-i+len(s.ring))%len(s.ring)]
		if id == "" {
			break
		}
		ids = append(ids, id)
	}
	s.mu.Unlock()
	out := make([]Receipt, 0, len(ids))
	for _, id := range ids {
		if rc, ok := s.receipt(id); ok {
			out = append(out, rc)
		}
	}
	return out
}
