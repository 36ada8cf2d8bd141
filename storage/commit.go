package storage

import (
	"fmt"
	"time"

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
//
// A batched commit (Writer.CommitBatched: a copy no client waits for) may
// also make the leader wait: a leader whose batch holds only batched
// commits waits up to batchLinger before its transaction, so that batched
// commits released together (the cache's write-behind window) but
// scheduled one by one on a busy machine still share it. The wait ends
// early when any other commit arrives, when maxBatch are pending, or when
// the store closes.
type groupCommit struct {
	running bool
	pending []*commitReq
	wake    chan struct{} // set while a leader waits; closing it ends the wait
}

type commitReq struct {
	fn      func(*bolt.Tx) error
	seg     *segment          // a segment to sync before the transaction (FsyncAlways), or nil
	batched bool              // may wait for others to share its transaction
	done    chan commitResult // buffered(1)
}

const (
	// batchLinger bounds a leader's wait for batched commits.
	batchLinger = 2 * time.Millisecond
	// maxBatch pending commits end the wait.
	maxBatch = 256
)

type commitResult struct {
	err  error
	lead bool // the receiver must now commit the pending queue
}

func (s *Store) groupUpdate(fn func(*bolt.Tx) error) error { return s.groupUpdateSync(nil, false, fn) }

// groupUpdateSync is groupUpdate for a commit that names a body packed in
// seg: under FsyncAlways the leader syncs the segments of its batch (each
// once) before the transaction, so the index never names a body that a
// power loss could take back. The caller keeps seg pinned meanwhile.
// A batched commit may wait for others to share its transaction (see
// groupCommit).
func (s *Store) groupUpdateSync(seg *segment, batched bool, fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, seg: seg, batched: batched, done: make(chan commitResult, 1)}
	s.gcMu.Lock()
	s.gc.pending = append(s.gc.pending, req)
	if s.gc.running {
		if s.gc.wake != nil && (!batched || len(s.gc.pending) >= maxBatch) {
			close(s.gc.wake)
			s.gc.wake = nil
		}
		s.gcMu.Unlock()
		res := <-req.done
		if !res.lead {
			return res.err
		}
		s.gcMu.Lock() // we lead now; running stays true
	}
	s.gc.running = true
	if s.lingerLocked() {
		wake := make(chan struct{})
		s.gc.wake = wake
		s.gcMu.Unlock()
		t := time.NewTimer(batchLinger)
		select {
		case <-t.C:
		case <-wake:
		case <-s.stop:
		}
		t.Stop()
		s.gcMu.Lock()
		if s.gc.wake == wake {
			s.gc.wake = nil
		}
	}
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

// lingerLocked reports whether the leader should wait for more batched
// commits: every pending one is batched, fewer than maxBatch are pending,
// and the store is not closing. Called with gcMu held.
func (s *Store) lingerLocked() bool {
	if len(s.gc.pending) >= maxBatch || s.stopping() {
		return false
	}
	for _, r := range s.gc.pending {
		if !r.batched {
			return false
		}
	}
	return true
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
		s.indexCommits.Add(1)
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
