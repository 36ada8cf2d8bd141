package storage

// Hottest returns the keys of the most recently used objects, most recent
// first (the eviction order read from the other end: after Open it is the
// access times the index holds, flushed by FlushAccess and Close). Objects
// larger than maxObject are skipped; the list stops before the sizes it
// names would exceed budget, at limit keys, or after scanning 4×limit
// entries (a store full of large objects is not walked to its end). It
// waits for the index to be loaded (see Options.LoadWait).
func (s *Store) Hottest(budget, maxObject int64, limit int) []string {
	if limit <= 0 || budget < 0 {
		return nil
	}
	select { // the order is known once the index is loaded
	case <-s.loaded:
	case <-s.stop:
		return nil
	}
	scan := 4 * limit
	if scan < limit { // overflow
		scan = limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.hottest(budget, maxObject, limit, scan)
}
