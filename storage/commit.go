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
	seg  *segment          // a segment to sync before the transaction (FsyncAlways), or nil
	done chan commitResult // buffered(1)
}

type commitResult struct {
	err  error
	lead bool // the receiver must now commit the pending queue
}

func (s *Store) groupUpdate(fn func(*bolt.Tx) error) error { return s.groupUpdateSync(nil, fn) }

// groupUpdateSync is groupUpdate for a commit that names a body packed in
// seg: under FsyncAlways the leader syncs the segments of its batch (each
// once) before the transaction, so the index never names a body that a
// power loss could take back. The caller keeps seg pinned meanwhile.
func (s *Store) groupUpdateSync(seg *segment, fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, seg: seg, done: make(chan commitResult, 1)}
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
	if s.opts.Fsync == FsyncAlways {
		batch = s.syncSegments(batch)
	}
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

// syncSegments fsyncs each segment the batch's bodies were written to, once,
// and fails the requests whose segment could not be synced.
func (s *Store) syncSegments(batch []*commitReq) []*commitReq {
	var synced map[*segment]error
	out := batch[:0]
	for _, r := range batch {
		if r.seg == nil {
			out = append(out, r)
			continue
		}
		if synced == nil {
			synced = make(map[*segment]error)
		}
		err, done := synced[r.seg]
		if !done {
			if err = r.seg.f.Sync(); err != nil {
				err = fmt.Errorf("storage: fsync segment: %w", err)
			}
			synced[r.seg] = err
		}
		if err != nil {
			r.done <- commitResult{err: err}
			continue
		}
		out = append(out, r)
	}
	return out
}
