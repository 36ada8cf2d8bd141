// Package storage is edged's disk tier: a bbolt index of typed metadata
// records, small bodies packed into shared append-only segment files, and
// larger bodies in one blob file per object version. It knows nothing of
// HTTP: a stored object is bytes plus a Meta record whose Header block is
// opaque here. It imports only the standard library and bbolt.
//
// # Layout under Options.Dir
//
//	index.db          bbolt: buckets "objects" (key → record), "tags"
//	                  (tag NUL key → empty, so purge-by-tag is a prefix scan)
//	                  and "meta" (format version, id base, blob layout)
//	segments/<id>     append-only files of Options.SegmentBytes (8 MiB)
//	                  holding bodies of up to Options.PackBelow (256 KiB)
//	                  back to back; the record names segment and offset
//	blobs/xx/yy/<id>  one file per committed larger body version; <id> is 16
//	                  hex digits, fresh per Create (never derived from the
//	                  key); 256×256 fan-out, 256 consecutive blobs per
//	                  directory (indexes from before the layout key: the
//	                  id's two low bytes)
//	tmp/<id>          large bodies being written; emptied at every Open
//
// # Segments
//
// A small body stays in the Writer's memory and at Commit is appended to
// the active segment at a reserved offset, then named in the index. A
// region of a segment is written once, by the commit that reserved it,
// before the index names it; a run never appends to an earlier run's
// segment, and segments are deleted only whole, when no entry names a body
// in them. Evicted, purged and replaced bodies leave dead bytes, which
// count against MaxBytes; beyond an eighth of it the segment with the most
// is compacted (its remaining bodies moved to the active segment under new
// version ids, repointed only if the entry still names the old version).
// Readers share one descriptor per segment, reference counted, so a
// segment deleted under a reader stays readable to it. Large bodies keep a
// file each: deleting one is an unlink, a fill is a plain file that
// read-while-write readers pread and Commit renames into place, and
// sendfile works on the whole file. See docs/storage-notes.md.
//
// # Atomicity and durability
//
// A body is checksummed in BlockSize blocks (CRC32C) as it is written. A
// large one is streamed to tmp/, fsynced (FsyncAlways), renamed to blobs/,
// its directory fsynced; a small one is appended to its segment (fsynced
// under FsyncAlways by the group commit's leader, once per segment); and
// only then is the index record committed in one bbolt transaction
// (concurrent commits are grouped into one transaction, without bbolt Batch's
// fixed delay). A reader therefore sees the old version or the whole new one. After a crash,
// Open empties tmp/ and a background recovery drops entries whose blob is
// missing or has the wrong size, or whose segment is missing or ends before
// their body, and deletes blobs and segments that no entry names.
// Checksums are verified on read (Object.Verify, Object.NewReader); a bad
// block drops the entry and reads as ErrCorrupt, so the cache refetches.
//
// # Memory
//
// The store keeps a small in-memory shadow of the index (key, version id,
// segment, size, access and expiry times, LRU and segment links) for byte
// accounting, eviction and compaction, about 200 bytes of heap per object
// with 45-byte keys; access times are recorded there by Get
// and written to the index in batches, so a hit costs no write transaction.
//
// The store relies on POSIX rename and unlink semantics (unlinking or
// replacing a file another descriptor has open); it is not meant for Windows.
package storage
