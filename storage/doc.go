// Package storage is edged's disk tier: a bbolt index of typed metadata
// records plus one blob file per object version. It knows nothing of HTTP: a
// stored object is bytes plus a Meta record whose Header block is opaque
// here. It imports only the standard library and bbolt.
//
// # Layout under Options.Dir
//
//	index.db          bbolt: buckets "objects" (key → record), "tags"
//	                  (tag NUL key → empty, so purge-by-tag is a prefix scan)
//	                  and "meta" (format version, blob id base, blob layout)
//	blobs/xx/yy/<id>  one file per committed object version; <id> is 16 hex
//	                  digits, fresh per Create (never derived from the key);
//	                  256×256 fan-out, 256 consecutive blobs per directory
//	                  (indexes from before the layout key: the id's two low
//	                  bytes, one directory per blob for the first 65,536)
//	tmp/<id>          bodies being written; emptied at every Open
//
// # Why one file per object, not segment files
//
// A CDN edge's objects range from a few bytes to gigabytes and are replaced
// and evicted individually. With one file per version: deleting (overwrite,
// purge, eviction) is an unlink with no compaction or garbage-collection pass
// and no write amplification; a reader that opened version 1 keeps reading it
// after version 2 is committed or the key is purged (Unix unlink semantics),
// with no reference counting of segment regions; a fill being written is a
// plain file that read-while-write readers pread and that Commit renames into
// place without copying; and the kernel's sendfile path applies to a whole
// file. The costs are an inode and a directory entry per object and an
// open(2)+fstat(2) per hit (a 1 KiB hit costs about 20 µs in all) and a
// create+rename per commit; see docs/storage-notes.md for the measurements.
// Segment files would win for very many tiny objects, which the memory tier
// absorbs; they would cost compaction and region reference counting here.
//
// # Atomicity and durability
//
// A body is streamed to tmp/, checksummed in BlockSize blocks (CRC32C) as it
// is written, fsynced (FsyncAlways), renamed to blobs/, its directory fsynced,
// and only then is the index record committed in one bbolt transaction
// (concurrent commits are grouped into one transaction, without bbolt Batch's
// fixed delay). A reader therefore sees the old version or the whole new one. After a crash,
// Open empties tmp/ and a background recovery drops entries whose blob is
// missing or has the wrong size and deletes blobs that no entry names.
// Checksums are verified on read (Object.Verify, Object.NewReader); a bad
// block drops the entry and reads as ErrCorrupt, so the cache refetches.
//
// # Memory
//
// The store keeps a small in-memory shadow of the index (key, blob id, size,
// access and expiry times, LRU links) for byte accounting and eviction, about
// 163 bytes of heap per object with 45-byte keys; access times are recorded there by Get
// and written to the index in batches, so a hit costs no write transaction.
//
// The store relies on POSIX rename and unlink semantics (unlinking or
// replacing a file another descriptor has open); it is not meant for Windows.
package storage
