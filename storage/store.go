package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no committed object is stored under the key (or its
	// blob was missing or had the wrong size; the entry has been dropped).
	ErrNotFound = errors.New("storage: not found")
	// ErrCorrupt means the stored body failed its checksum or length check;
	// the entry has been dropped and must be treated as a miss.
	ErrCorrupt = errors.New("storage: corrupt object")
	// ErrClosed means the store (or the writer) was closed.
	ErrClosed = errors.New("storage: closed")
	// ErrSizeMismatch means Commit was given a Meta.Size different from the
	// number of bytes written; the version has been aborted.
	ErrSizeMismatch = errors.New("storage: size mismatch")
	// ErrTooLarge means the body is larger than Options.MaxBytes and can never
	// be stored; the caller should Abort the writer.
	ErrTooLarge = errors.New("storage: object larger than the store")
	// ErrAborted is returned by Writer methods after Abort.
	ErrAborted = errors.New("storage: write aborted")
	// ErrInUse means another process (or another Store in this process)
	// holds the data directory's index lock.
	ErrInUse = errors.New("storage: data directory is in use")
	// ErrUnreadable means the index turned out unreadable while it was
	// loaded in the background; the store refuses everything until the
	// next Open, which moves the index aside.
	ErrUnreadable = errors.New("storage: index unreadable; moved aside at the next start")
)

// errStopped ends background work that Close interrupted.
var errStopped = errors.New("storage: stopped")

// FsyncPolicy says how hard Commit works to make a blob durable.
type FsyncPolicy int

const (
	// FsyncAlways fsyncs each blob before it is renamed into place and the
	// blob directory after the rename; bbolt commits are synced. The default.
	FsyncAlways FsyncPolicy = iota
	// FsyncNever fsyncs neither blobs, directories nor the index (bbolt
	// runs with NoSync). The store survives process crashes (kill -9) intact;
	// after a power loss it may lose recent objects: the per-block checksums
	// catch torn data on read, recovery drops entries whose blobs are short
	// or missing, and an unreadable index is moved aside (the store starts
	// empty). Never a wrong body.
	FsyncNever
)

// Options configures Open. The zero value of every field but Dir is useful.
type Options struct {
	// Dir is the data directory; required. It is created if missing.
	Dir string
	// MaxBytes is the budget for the sum of all body sizes; 0 means 10 GiB.
	// Eviction keeps the total at or below it; a single body larger than
	// MaxBytes fails with ErrTooLarge.
	MaxBytes int64
	// Fsync is the durability policy; the zero value is FsyncAlways.
	Fsync FsyncPolicy
	// Logger receives recovery and error reports; nil discards them.
	Logger *slog.Logger
	// Now is the clock for stored and access times and expiry checks; nil
	// means time.Now.
	Now func() time.Time
	// OpenTimeout bounds the wait for the index file lock; 0 means 5s. If
	// another process holds the directory, Open fails with ErrInUse.
	OpenTimeout time.Duration
	// AccessFlushInterval is how often batched access times are written to
	// the index; 0 means 30s, negative disables the background flusher
	// (FlushAccess and Close still flush).
	AccessFlushInterval time.Duration
	// PackBelow: bodies of at most this many bytes are packed into shared
	// segment files instead of a file each; 0 means 256 KiB, negative
	// turns packing off. It is capped at a quarter of SegmentBytes, and
	// packing is off when MaxBytes holds fewer than 16 segments.
	PackBelow int64
	// SegmentBytes is the size of a segment file; 0 means 8 MiB.
	SegmentBytes int64
	// LoadWait bounds how long Open waits for the in-memory index to be
	// loaded from index.db; 0 means 500ms, negative does not wait. What is not
	// loaded by then is loaded in the background while the store serves:
	// Get reads the index directly, eviction waits for the load.
	LoadWait time.Duration
}

// Stats is a snapshot of the store's counters. The cache package turns it
// into metrics.
type Stats struct {
	Bytes                  int64 // sum of indexed body sizes
	Objects                int64 // indexed objects
	Evictions              int64 // objects evicted to stay under MaxBytes
	ChecksumFailures       int64 // objects dropped because a block failed its CRC (or was short)
	SizeMismatches         int64 // objects dropped by Get because the blob was missing or the wrong size
	RecoveryDroppedEntries int64 // index entries dropped at Open/recovery (blob missing, wrong size, undecodable)
	RecoveryDeletedOrphans int64 // blob files recovery deleted because no entry named them
	Loaded                 bool  // the in-memory index has been loaded from index.db
	RecoveryDone           bool  // background recovery has finished
	MovedAsideIndex        bool  // index.db was unreadable and was renamed aside at Open
	Segments               int64 // segment files holding packed bodies
	SegmentBytes           int64 // bytes in segment files, live and dead
	DeadBytes              int64 // segment bytes no entry names, waiting for compaction
	Compactions            int64 // segments compacted (their live bodies moved on)
	Relocated              int64 // bodies compaction moved
	SegmentsDeleted        int64 // segment files deleted (emptied by eviction, purge, overwrite or compaction)
	IndexCommits           int64 // index transactions of the group commit (each may name many objects)
}

const (
	defaultMaxBytes      = 10 << 30
	defaultOpenTimeout   = 5 * time.Second
	defaultFlushInterval = 30 * time.Second
	defaultLoadWait      = 500 * time.Millisecond
	formatVersion        = 1
	numStripes           = 256
	evictBatch           = 256 // victims removed per bbolt transaction
	// evictSlackDiv sets eviction's low-water mark: once over MaxBytes it
	// frees up to MaxBytes/evictSlackDiv more than the excess (whole
	// objects that fit in that slack, coldest first), so one index
	// transaction makes room for the next fills instead of every commit
	// of a full store paying its own (serialized) eviction transaction.
	evictSlackDiv = 256
	expiredWindow = 1024 // coldest entries scanned for expired ones
)

var (
	bucketObjects = []byte("objects")
	bucketTags    = []byte("tags")
	bucketMeta    = []byte("meta")
	keyFormat     = []byte("format")
	keyIDBase     = []byte("idbase")
	keyLayout     = []byte("layout")
	keyClosed     = []byte("closed") // Unix time of the last clean close
)

// Blob directory layouts (meta key "layout"; absent means layoutSpread).
const (
	// layoutSpread fans out on the id's two low bytes: consecutive blobs
	// land in different directories, so the first 65,536 blobs of a store
	// each create one (a mkdir on the fill path of a cold node).
	layoutSpread = 1
	// layoutGrouped fills one directory with 256 consecutive blobs before
	// the next: yy is the counter's second byte, xx its third plus the
	// run's id base (so each run starts in other directories). Indexes
	// created since this layout existed use it.
	layoutGrouped = 2
)

// Store is the disk tier. It is safe for concurrent use.
type Store struct {
	opts   Options
	dir    string
	log    *slog.Logger
	now    func() time.Time
	db     *bolt.DB
	idBase uint64
	idSeq  atomic.Uint64
	layout byte // layoutSpread or layoutGrouped, from the index

	// closeMu is held shared by every operation that touches db and
	// exclusively by Close, so Close waits for operations in flight.
	closeMu sync.RWMutex
	closed  atomic.Bool
	stop    chan struct{}
	bg      sync.WaitGroup

	// stripes serialize index mutations (commit, delete, drop, eviction) per
	// key, so the in-memory shadow is updated in the same order as the index.
	stripes [numStripes]sync.Mutex
	evictMu sync.Mutex

	gcMu         sync.Mutex // guards gc
	gc           groupCommit
	indexCommits atomic.Int64

	mu      sync.Mutex // guards everything below
	lru     *lru
	writers map[*Writer]struct{}
	fresh   map[uint64]struct{} // blob ids renamed in while recovery runs; nil after

	loaded       chan struct{} // closed once the shadow index is loaded (or loading failed)
	failed       atomic.Bool   // loading found the index unreadable
	recoveryDone chan struct{}
	dirsMade     sync.Map  // "xx/yy" → struct{}: blob dirs known to exist
	blocks       sync.Pool // *[]byte of BlockSize, for verifying reads

	// Packing (segment.go): bodies up to packBelow bytes (0: none) go into
	// the active segment, rotated at segmentBytes under rotateMu.
	packBelow, segmentBytes int64
	rotateMu                sync.Mutex
	active                  *segment // guarded by mu

	evictions, checksumFailures, sizeMismatches atomic.Int64
	recoveryDropped, recoveryOrphans            atomic.Int64
	compactions, relocated, segmentsDeleted     atomic.Int64
	movedAside                                  bool
	freshIndex                                  bool // Open created index.db's buckets
}

// Open opens or creates the store in opts.Dir.
//
// It takes bbolt's exclusive file lock on index.db (waiting up to
// OpenTimeout; another holder yields ErrInUse), deletes everything in tmp/,
// and loads the in-memory eviction index. If index.db is not a readable bbolt
// file it is renamed aside to index.db.corrupt-<unix> with an Error log line
// and an empty index is created; the old blobs are then orphans.
//
// Recovery (dropping entries whose blob is missing or the wrong size, deleting
// blobs no entry names) runs in a background goroutine; WaitRecovery waits
// for it and Stats reports its results.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: Options.Dir is required")
	}
	s := newStore(withDefaults(opts))
	for _, d := range []string{s.dir, filepath.Join(s.dir, "blobs"), filepath.Join(s.dir, "tmp"), filepath.Join(s.dir, "segments")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	if err := s.openIndex(); err != nil {
		return nil, err
	}
	if err := s.cleanLeftovers(); err != nil {
		s.db.Close()
		return nil, err
	}
	s.lru.loading, s.lru.gone = true, make(map[string]struct{})
	s.bg.Add(1)
	go s.runLoad()
	if s.opts.LoadWait > 0 {
		t := time.NewTimer(s.opts.LoadWait)
		select {
		case <-s.loaded:
		case <-t.C:
		}
		t.Stop()
	}
	if s.failed.Load() {
		// Found unreadable while Open waited: move it aside now and
		// start over with an empty index.
		<-s.recoveryDone
		s.db.Close()
		if err := s.moveAside(filepath.Join(s.dir, "index.db"), ErrUnreadable); err != nil {
			return nil, err
		}
		opts.LoadWait = -1
		st, err := Open(opts)
		if st != nil {
			st.movedAside = true
		}
		return st, err
	}
	if s.opts.AccessFlushInterval > 0 {
		s.bg.Add(1)
		go s.flushLoop()
	}
	return s, nil
}

// withDefaults fills in the zero fields of opts that have defaults.
func withDefaults(opts Options) Options {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = defaultOpenTimeout
	}
	if opts.AccessFlushInterval == 0 {
		opts.AccessFlushInterval = defaultFlushInterval
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = defaultSegmentBytes
	}
	if opts.PackBelow == 0 {
		opts.PackBelow = defaultPackBelow
	}
	if opts.LoadWait == 0 {
		opts.LoadWait = defaultLoadWait
	}
	return opts
}

// newStore returns a store for opts (defaults filled in), not yet open.
func newStore(opts Options) *Store {
	s := &Store{
		opts:         opts,
		dir:          opts.Dir,
		log:          opts.Logger,
		now:          opts.Now,
		stop:         make(chan struct{}),
		lru:          newLRU(),
		writers:      make(map[*Writer]struct{}),
		fresh:        make(map[uint64]struct{}),
		recoveryDone: make(chan struct{}),
		loaded:       make(chan struct{}),
		segmentBytes: opts.SegmentBytes,
		packBelow:    -1,
	}
	if opts.PackBelow > 0 && opts.MaxBytes >= packMinSegments*opts.SegmentBytes {
		s.packBelow = min(opts.PackBelow, opts.SegmentBytes/4)
	}
	s.blocks.New = func() any { b := make([]byte, BlockSize); return &b }
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// cleanLeftovers empties tmp/ (and segments/ for a fresh index). Only once
// the index lock is held is that safe: a live process using this directory
// would have made openIndex fail.
func (s *Store) cleanLeftovers() error {
	if err := cleanDir(filepath.Join(s.dir, "tmp")); err != nil {
		return fmt.Errorf("storage: cleaning tmp: %w", err)
	}
	// A fresh index names no segment: any segment file is left from an
	// index that was moved aside or removed, and its id could collide with
	// this run's (ids of a fresh index start at the clock).
	if s.freshIndex {
		ents, _ := os.ReadDir(filepath.Join(s.dir, "segments"))
		if err := cleanDir(filepath.Join(s.dir, "segments")); err != nil {
			return fmt.Errorf("storage: cleaning segments: %w", err)
		}
		s.recoveryOrphans.Add(int64(len(ents)))
	}
	return nil
}

// cleanDir removes everything inside dir, keeping dir.
func cleanDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the background goroutines, aborts writers that were neither
// committed nor aborted, flushes batched access times and closes the index,
// releasing its file lock so a successor process can open the directory.
// Objects already returned by Get stay readable until they are closed.
// Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.mu.Lock()
	ws := make([]*Writer, 0, len(s.writers))
	for w := range s.writers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.Abort()
	}
	s.bg.Wait()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.mu.Lock()
	if s.active != nil {
		s.active.sealed = true // an empty one is deleted here
		s.lru.maybeEmptied(s.active)
		s.active = nil
	}
	emptied := s.takeEmptiedLocked()
	for _, seg := range s.lru.segs {
		seg.dropped = true // nothing acquires it any more
		s.unrefLocked(seg) // the store's reference: Objects still open keep the file
	}
	s.mu.Unlock()
	s.deleteSegments(emptied)
	ferr := s.flushAccess()
	// The index runs with NoFreelistSync (a commit does not write bbolt's
	// list of free pages), so opening it after a crash scans every page
	// (1.2 s for a 1 GB index of a million objects). The last commit of
	// a clean close writes the list, and the next Open reads it instead.
	if !s.failed.Load() {
		s.db.NoFreelistSync = false
		if err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyClosed, binary.BigEndian.AppendUint64(nil, uint64(s.now().Unix())))
		}); err != nil {
			s.log.Warn("storage: writing the free page list at close", "err", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: closing index: %w", err)
	}
	return ferr
}

// begin registers an operation against the open index; end must follow.
func (s *Store) begin() error {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	if s.failed.Load() {
		s.closeMu.RUnlock()
		return ErrUnreadable
	}
	return nil
}

// isLoaded reports whether the shadow index has been loaded.
func (s *Store) isLoaded() bool {
	select {
	case <-s.loaded:
		return true
	default:
		return false
	}
}

func (s *Store) end() { s.closeMu.RUnlock() }

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Bytes: s.lru.bytes, Objects: int64(len(s.lru.m))}
	s.mu.Unlock()
	st.Evictions = s.evictions.Load()
	st.ChecksumFailures = s.checksumFailures.Load()
	st.SizeMismatches = s.sizeMismatches.Load()
	st.RecoveryDroppedEntries = s.recoveryDropped.Load()
	st.RecoveryDeletedOrphans = s.recoveryOrphans.Load()
	select {
	case <-s.recoveryDone:
		st.RecoveryDone = true
	default:
	}
	st.Loaded = s.isLoaded() && !s.failed.Load()
	st.MovedAsideIndex = s.movedAside
	s.mu.Lock()
	st.Segments = int64(len(s.lru.segs))
	for _, seg := range s.lru.segs {
		st.SegmentBytes += seg.written
	}
	st.DeadBytes = s.lru.dead
	s.mu.Unlock()
	st.Compactions = s.compactions.Load()
	st.Relocated = s.relocated.Load()
	st.SegmentsDeleted = s.segmentsDeleted.Load()
	st.IndexCommits = s.indexCommits.Load()
	return st
}

// WaitLoaded blocks until the in-memory index has been loaded (or loading
// stopped: Close, or an unreadable index).
func (s *Store) WaitLoaded() { <-s.loaded }

// WaitRecovery blocks until the background recovery started by Open has
// finished (or was stopped by Close).
func (s *Store) WaitRecovery() { <-s.recoveryDone }

func (s *Store) stripe(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &s.stripes[h.Sum32()%numStripes]
}

// blobRel is the blob's path relative to Dir/blobs, xx/yy/<16 hex digits>,
// in the store's layout.
func (s *Store) blobRel(id uint64) string {
	if s.layout == layoutGrouped {
		return fmt.Sprintf("%02x/%02x/%016x", byte(id>>16+id>>32), byte(id>>8), id)
	}
	return fmt.Sprintf("%02x/%02x/%016x", byte(id), byte(id>>8), id)
}

func (s *Store) blobPath(id uint64) string {
	return filepath.Join(s.dir, "blobs", s.blobRel(id))
}

// freeVersion releases the body of a version the index no longer names:
// a blob file is deleted; a packed body's segment is deleted if that was
// its last body (the shadow index has counted it dead already).
func (s *Store) freeVersion(id, seg uint64) {
	if seg == 0 {
		s.removeBlob(id)
	}
	s.reapSegments()
}

// removeBlob deletes a blob file; a missing file is fine. Readers that have
// it open keep reading (Unix unlink semantics).
func (s *Store) removeBlob(id uint64) {
	if err := os.Remove(s.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("storage: removing blob", "id", id, "err", err)
	}
}

// Delete removes the object under key: its record, tag rows and blob.
// Deleting a missing key is not an error. Readers holding an Object of it
// keep reading their version.
func (s *Store) Delete(key string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	var old *record
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		old, err = deleteRecord(tx, key, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: delete: %w", err)
	}
	s.mu.Lock()
	s.lru.remove(key, 0)
	s.mu.Unlock()
	if old != nil {
		s.freeVersion(old.id, old.seg)
	}
	return nil
}

// MayHave reports whether key may have a version in the store, so a
// caller can skip a Delete of what is not there. It costs a map lookup in
// the in-memory index, or while that loads a read of the index (no write
// transaction); a version committed concurrently may or may not be seen.
func (s *Store) MayHave(key string) bool {
	if !s.isLoaded() {
		if s.begin() != nil {
			return false // closed: there is nothing to delete from
		}
		defer s.end()
		found := true // an unreadable index: let the Delete find out
		s.db.View(func(tx *bolt.Tx) error {
			found = tx.Bucket(bucketObjects).Get([]byte(key)) != nil
			return nil
		})
		return found
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.lru.m[key]
	return ok
}

// deleteRecord removes key's record and tag rows inside tx if its blob id is
// id (0 matches any). It returns the removed record, or nil. An undecodable
// record is removed too (with nil returned).
func deleteRecord(tx *bolt.Tx, key string, id uint64) (*record, error) {
	objs := tx.Bucket(bucketObjects)
	v := objs.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	r, derr := decodeRecord(v)
	if derr == nil && id != 0 && r.id != id {
		return nil, nil
	}
	if err := objs.Delete([]byte(key)); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, nil
	}
	tags := tx.Bucket(bucketTags)
	for _, t := range r.tags {
		if err := tags.Delete(tagRow(t, key)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func tagRow(tag, key string) []byte {
	b := make([]byte, 0, len(tag)+1+len(key))
	b = append(b, tag...)
	b = append(b, 0)
	return append(b, key...)
}

// removeEntries drops the given index entries, each only if its record still
// names the victim's blob id, in one transaction; then updates the in-memory
// index and deletes the blobs. It returns how many entries it removed. The
// caller must hold begin/end.
func (s *Store) removeEntries(vs []victim) (int, error) {
	if len(vs) == 0 {
		return 0, nil
	}
	// Lock the stripes in ascending order (the only multi-stripe holder).
	var need [numStripes]bool
	for _, v := range vs {
		h := fnv.New32a()
		h.Write([]byte(v.key))
		need[h.Sum32()%numStripes] = true
	}
	for i := range need {
		if need[i] {
			s.stripes[i].Lock()
			defer s.stripes[i].Unlock()
		}
	}
	var removed []victim
	err := s.db.Update(func(tx *bolt.Tx) error {
		removed = removed[:0]
		for _, v := range vs {
			r, err := deleteRecord(tx, v.key, v.id)
			if err != nil {
				return err
			}
			if r != nil {
				removed = append(removed, victim{key: v.key, id: r.id, seg: r.seg})
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: removing entries: %w", err)
	}
	s.mu.Lock()
	for _, v := range vs {
		s.lru.remove(v.key, v.id)
	}
	s.mu.Unlock()
	for _, v := range removed {
		if v.seg == 0 {
			s.removeBlob(v.id)
		}
	}
	s.reapSegments()
	return len(removed), nil
}

// evict removes least recently accessed objects (expired ones first among
// the coldest) until the total is within MaxBytes, and then down to the
// low-water mark (MaxBytes/evictSlackDiv below it) in the same round. The
// caller must hold begin/end and no stripe.
//
// One commit evicts at a time and the others do not wait for it: a commit
// that finds eviction running leaves its bytes to the evictor, which looks
// at the total again after it lets go (so bytes committed while it ran
// are not left over the budget). Waiting would hold the cache's write-behind
// slots behind one eviction or compaction, and a full disk tier would skip
// the fills that queue behind them.
func (s *Store) evict() {
	if !s.isLoaded() {
		return // the load evicts when it is done
	}
	for s.overBudget() && s.evictMu.TryLock() {
		under := s.evictLocked()
		s.evictMu.Unlock()
		if !under {
			return // nothing left to evict, or an error was logged
		}
	}
}

// evictedHook, when set (by tests, while no eviction runs), runs when an
// evictor finds the store within budget, still holding evictMu.
var evictedHook func()

// overBudget reports whether the stored and dead bytes exceed MaxBytes.
func (s *Store) overBudget() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.bytes+s.lru.dead > s.opts.MaxBytes
}

// evictLocked is evict's work under evictMu. It reports whether it left
// the store within MaxBytes.
func (s *Store) evictLocked() bool {
	stuck := false      // a compaction failed to empty its segment: evict instead
	for range 1 << 16 { // bounded: each round removes or the state changed
		s.mu.Lock()
		// Dead bytes in segments take disk space like live ones; beyond
		// their allowance the segment with the most is compacted first
		// (which frees them without evicting anything).
		over := s.lru.bytes + s.lru.dead - s.opts.MaxBytes
		if over <= 0 {
			s.mu.Unlock()
			if evictedHook != nil {
				evictedHook()
			}
			return true
		}
		if s.lru.dead > s.opts.MaxBytes/deadFraction && !stuck {
			if seg := s.mostDeadLocked(); seg != nil {
				s.mu.Unlock()
				s.compact(seg)
				s.mu.Lock()
				stuck = !seg.dropped
				s.mu.Unlock()
				continue
			}
		}
		vs := s.lru.pickVictims(over, s.opts.MaxBytes/evictSlackDiv, evictBatch, expiredWindow, s.now().UnixNano())
		s.mu.Unlock()
		if len(vs) == 0 {
			return false
		}
		n, err := s.removeEntries(vs)
		s.evictions.Add(int64(n))
		if err != nil {
			s.log.Error("storage: eviction failed", "err", err)
			return false
		}
	}
	return false
}

// Keys calls fn for every indexed key in key order until fn returns false.
// fn runs outside any index transaction, so it may call Delete; keys
// committed or deleted during the iteration may or may not be seen.
func (s *Store) Keys(fn func(key string) bool) {
	s.scan(bucketObjects, nil, fn)
}

// KeysWithPrefix calls fn for every key starting with prefix, in key order,
// until fn returns false. It seeks to the prefix; it does not scan the rest.
func (s *Store) KeysWithPrefix(prefix string, fn func(key string) bool) {
	s.scan(bucketObjects, []byte(prefix), fn)
}

// KeysByTag calls fn for every key whose current version carries tag, until
// fn returns false. It is a prefix scan of the tag index.
func (s *Store) KeysByTag(tag string, fn func(key string) bool) {
	s.scan(bucketTags, append([]byte(tag), 0), fn)
}

// scan walks bucket keys with prefix in chunks, calling fn between
// transactions. For the tags bucket the prefix is stripped from what fn sees.
func (s *Store) scan(bucket, prefix []byte, fn func(string) bool) {
	const chunk = 512
	strip := bytes.Equal(bucket, bucketTags)
	seek := append([]byte(nil), prefix...)
	first := true
	for {
		var keys []string
		var last []byte
		if err := s.begin(); err != nil {
			return
		}
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, _ := c.Seek(seek)
			if !first && k != nil && bytes.Equal(k, seek) {
				k, _ = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < chunk; k, _ = c.Next() {
				if strip {
					keys = append(keys, string(k[len(prefix):]))
				} else {
					keys = append(keys, string(k))
				}
				last = append(last[:0], k...)
			}
			return nil
		})
		s.end()
		if err != nil {
			s.log.Error("storage: scanning index", "err", err)
			return
		}
		for _, k := range keys {
			if !fn(k) {
				return
			}
		}
		if len(keys) < chunk {
			return
		}
		seek, first = last, false
	}
}

// UpdateMeta replaces the opaque header and the expiry time of the object
// stored under key, leaving its body alone: what a cache does when a
// revalidation answers 304 Not Modified (RFC 9111 §4.3.4). It returns
// ErrNotFound when no object is stored under key.
func (s *Store) UpdateMeta(key string, header []byte, expires time.Time) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	mu := s.stripe(key)
	mu.Lock()
	defer mu.Unlock()
	var updated *record
	err := s.db.Update(func(tx *bolt.Tx) error {
		objs := tx.Bucket(bucketObjects)
		v := objs.Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		r, err := decodeRecord(v)
		if err != nil {
			return err
		}
		r.header = append([]byte(nil), header...)
		r.expires = expires
		updated = r
		return objs.Put([]byte(key), encodeRecord(nil, r))
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("storage: update meta: %w", err)
	}
	s.mu.Lock()
	s.lru.set(key, updated.id, s.segmentOfLocked(updated.seg), updated.size, s.now().UnixNano(), timeToNanos(updated.expires))
	s.mu.Unlock()
	return nil
}

// DeleteKeys removes the objects stored under keys, many per index
// transaction (so purging a large tag costs a few fsyncs, not one per
// object). Missing keys are skipped. It returns how many objects existed.
func (s *Store) DeleteKeys(keys []string) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	const batch = 1024
	total := 0
	for len(keys) > 0 {
		n := min(len(keys), batch)
		vs := make([]victim, n)
		for i, k := range keys[:n] {
			vs[i] = victim{key: k}
		}
		removed, err := s.removeEntries(vs)
		total += removed
		if err != nil {
			return total, err
		}
		keys = keys[n:]
	}
	return total, nil
}
