// Package storage is edged's disk tier: a bbolt index of typed metadata
// records plus blob files holding the bodies. It knows nothing of HTTP: a
// stored object is bytes plus a Meta record whose header block is opaque here.
//
// This file defines the contract the cache package programs against. The
// bbolt-backed implementation arrives with the disk-tier work (issue 3); until
// then the daemon runs with the memory tier only.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound means no committed object is stored under the key.
	ErrNotFound = errors.New("storage: not found")
	// ErrCorrupt means the stored body failed its checksum or length check;
	// the entry has been dropped and must be treated as a miss.
	ErrCorrupt = errors.New("storage: corrupt object")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("storage: closed")
)

// Meta is the typed metadata record kept in the index for one object.
type Meta struct {
	// Key is the cache key the object is stored under.
	Key string
	// Header is an opaque block (the cache package's encoding of status and
	// response headers); storage never parses it.
	Header []byte
	// Size is the body length in bytes.
	Size int64
	// Checksum is the body's checksum, verified on read.
	Checksum uint64
	// Stored is when the object was committed.
	Stored time.Time
	// Expires is the freshness deadline the cache computed; storage uses it
	// only to prefer evicting expired objects.
	Expires time.Time
	// Tags are the purge tags of the object (indexed for purge by tag).
	Tags []string
}

// Store is the disk tier.
type Store interface {
	// Get returns the metadata and a reader over the whole body. The caller
	// must Close the reader. A reader sees either the old object or the whole
	// new one, never a torn one.
	Get(ctx context.Context, key string) (Meta, io.ReadSeekCloser, error)
	// Put starts writing an object. Nothing is visible to Get until the
	// returned Writer's Commit succeeds; Abort (or a failed Commit) leaves
	// nothing behind.
	Put(ctx context.Context, meta Meta) (Writer, error)
	// Delete removes the object under key; deleting a missing key is not an
	// error.
	Delete(ctx context.Context, key string) error
	// Close flushes the index and releases the data directory.
	Close() error
}

// Writer streams one object's body into the store.
type Writer interface {
	io.Writer
	// Commit verifies the length, makes the blob durable per the fsync
	// policy and publishes the index entry.
	Commit() error
	// Abort discards everything written so far.
	Abort() error
}
