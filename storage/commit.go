package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// groupCommit merges concurrent index commits into one bbolt transaction
// without bbolt Batch's fixed delay: the first caller becomes the leader and
// commits at once; callers arriving meanwhile queue up, and when the leader's
// transaction is done it hands leadership to the oldest queued caller, who
// commits the whole queue in one transaction. An idle store therefore commits
// with no added latency, a busy one amortizes the fsync of bbolt's commit over
// everything that queued during the previous one.
//
// Like bbolt's Batch, fn may run more than once (when another fn in the same
// transaction fails, the transaction is retried without it), so it must be
// idempotent and publish side effects only after groupUpdate returns.
type groupCommit struct {
	running bool
	pending []*commitReq
}

type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan commitResult // buffered(1)
}

type commitResult struct {
	err  error
	lead bool // the receiver must now commit the pending queue
}

func (s *Store) groupUpdate(fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, done: make(chan commitResult, 1)}
	s.gcMu.Lock()
	s.gc.pending = append(s.gc.pending, req)
	if s.gc.running {
		s.gcMu.Unlock()
		res := <-req.done
		if !res.lead {
			return res.err
		}
		s.gcMu.Lock() // we lead now; running stays true
	}
	s.gc.running = true
	batch := s.gc.pending
	s.gc.pending = nil
	s.gcMu.Unlock()

	s.runBatch(batch)

	s.gcMu.Lock()
	if len(s.gc.pending) > 0 {
		s.gc.pending[0].done <- commitResult{lead: true}
	} else {
		s.gc.running = false
	}
	s.gcMu.Unlock()
	return (<-req.done).err
}

// runBatch commits the requests' functions in one transaction, dropping and
// failing any function that returns an error (or panics) and retrying the rest.
func (s *Store) runBatch(batch []*commitReq) {
	for len(batch) > 0 {
		failed := -1
		var ferr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				if err := safeCall(r.fn, tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].done <- commitResult{err: ferr}
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, r := range batch {
			r.done <- commitResult{err: err}
		}
		return
	}
}

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("storage: panic in index update: %v", p)
		}
	}()
	return fn(tx)
}
