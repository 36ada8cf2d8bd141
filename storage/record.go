package storage

import (
	"encoding/binary"
	"errors"
	"time"
)

// Record versions, the first byte of every encoded index record. Bump it
// when the layout changes; decodeRecord rejects versions it does not know.
const (
	// recordVersion is a body in its own blob file. Records of such bodies
	// keep this version, so a binary from before packing still reads them.
	recordVersion = 1
	// recordPacked is a body packed in a segment file: v1 plus the segment
	// id and the body's offset in it, right after the id. A binary from
	// before packing drops such records as undecodable (a miss, never a
	// wrong body).
	recordPacked = 2
)

// BlockSize is the checksum block size: the body is checksummed in blocks of
// this many bytes (the last block may be shorter), so a reader can verify as it
// streams instead of reading the whole object first.
const BlockSize = 256 << 10

// Limits enforced on keys and tags so that every bbolt key we build stays far
// below bbolt's MaxKeySize (32 KiB).
const (
	maxKeyLen = 16 << 10
	maxTagLen = 1 << 10
)

// errBadRecord is wrapped by decodeRecord errors; callers treat it like
// ErrCorrupt (the entry is dropped).
var errBadRecord = errors.New("storage: malformed index record")

// record is one index entry: everything the index knows about a committed
// object version.
type record struct {
	key       string
	header    []byte
	size      int64
	id        uint64 // version id; names blobs/xx/yy/<id> when seg is 0
	seg       uint64 // segment id of a packed body, 0 for a blob file
	off       int64  // offset of a packed body in its segment
	blockSize int64
	crcs      []uint32 // CRC32C (Castagnoli) per block
	stored    time.Time
	expires   time.Time
	tags      []string
	atime     time.Time // last access, flushed in batches
}

// encodeRecord appends the versioned binary encoding of r to dst.
//
// Layout (v1): version byte, then key and header as uvarint-length-prefixed
// bytes, size, id, block size, block count and the little-endian CRCs, stored,
// expires and access time as zigzag varint Unix nanoseconds (0 = zero time),
// then the tag count and uvarint-length-prefixed tags. Nothing may follow.
// v2 (a packed body) has the segment id and offset as uvarints after the id.
func encodeRecord(dst []byte, r *record) []byte {
	if r.seg != 0 {
		dst = append(dst, recordPacked)
	} else {
		dst = append(dst, recordVersion)
	}
	dst = appendBytes(dst, []byte(r.key))
	dst = appendBytes(dst, r.header)
	dst = binary.AppendUvarint(dst, uint64(r.size))
	dst = binary.AppendUvarint(dst, r.id)
	if r.seg != 0 {
		dst = binary.AppendUvarint(dst, r.seg)
		dst = binary.AppendUvarint(dst, uint64(r.off))
	}
	dst = binary.AppendUvarint(dst, uint64(r.blockSize))
	dst = binary.AppendUvarint(dst, uint64(len(r.crcs)))
	for _, c := range r.crcs {
		dst = binary.LittleEndian.AppendUint32(dst, c)
	}
	dst = binary.AppendVarint(dst, timeToNanos(r.stored))
	dst = binary.AppendVarint(dst, timeToNanos(r.expires))
	dst = binary.AppendVarint(dst, timeToNanos(r.atime))
	dst = binary.AppendUvarint(dst, uint64(len(r.tags)))
	for _, t := range r.tags {
		dst = appendBytes(dst, []byte(t))
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// decoder reads fields from an encoded record, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = errors.Join(errBadRecord, errors.New(what))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a copy of the next length-prefixed field (the input may be
// bbolt memory, valid only inside a transaction).
func (d *decoder) bytes(what string, max uint64) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) || n > max {
		d.fail(what)
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}

// skip passes over the next length-prefixed field without copying it.
func (d *decoder) skip(what string, max uint64) {
	n := d.uvarint(what)
	if d.err != nil {
		return
	}
	if n > uint64(len(d.b)) || n > max {
		d.fail(what)
		return
	}
	d.b = d.b[n:]
}

// decodeRecord parses an encoded record. It never panics: malformed input of
// any kind yields an error wrapping errBadRecord.
func decodeRecord(b []byte) (*record, error) {
	r := &record{}
	return r, decodeInto(r, b, true)
}

// decodeShadow is decodeRecord for the shadow index loaded at Open: it
// checks the same structure but keeps only key, size, ids, offset and
// times (no header, checksums or tags are copied), so a restart with
// millions of records allocates little besides the shadow itself.
func decodeShadow(r *record, b []byte) error {
	*r = record{}
	return decodeInto(r, b, false)
}

func decodeInto(r *record, b []byte, full bool) error {
	if len(b) == 0 || b[0] != recordVersion && b[0] != recordPacked {
		return errors.Join(errBadRecord, errors.New("unknown version"))
	}
	d := &decoder{b: b[1:]}
	key := d.bytes("key", maxKeyLen)
	r.key = string(key)
	if full {
		r.header = d.bytes("header", 1<<31)
	} else {
		d.skip("header", 1<<31)
	}
	size := d.uvarint("size")
	r.id = d.uvarint("id")
	if b[0] == recordPacked {
		r.seg = d.uvarint("segment")
		off := d.uvarint("offset")
		if d.err == nil && (r.seg == 0 || off > 1<<62) {
			return errors.Join(errBadRecord, errors.New("segment or offset out of range"))
		}
		r.off = int64(off)
	}
	bs := d.uvarint("block size")
	nblocks := d.uvarint("block count")
	if d.err != nil {
		return d.err
	}
	if size > 1<<62 {
		return errors.Join(errBadRecord, errors.New("size out of range"))
	}
	if bs == 0 || bs > 1<<30 {
		return errors.Join(errBadRecord, errors.New("block size out of range"))
	}
	r.size, r.blockSize = int64(size), int64(bs)
	if want := (size + bs - 1) / bs; nblocks != want {
		return errors.Join(errBadRecord, errors.New("block count does not match size"))
	}
	if nblocks > uint64(len(d.b))/4 {
		return errors.Join(errBadRecord, errors.New("truncated checksums"))
	}
	if !full {
		d.b = d.b[4*nblocks:]
	} else if nblocks > 0 {
		r.crcs = make([]uint32, nblocks)
		for i := range r.crcs {
			r.crcs[i] = binary.LittleEndian.Uint32(d.b[4*i:])
		}
		d.b = d.b[4*nblocks:]
	}
	r.stored = nanosToTime(d.varint("stored"))
	r.expires = nanosToTime(d.varint("expires"))
	r.atime = nanosToTime(d.varint("atime"))
	ntags := d.uvarint("tag count")
	if d.err != nil {
		return d.err
	}
	if ntags > uint64(len(d.b)) { // every tag needs at least its length byte
		return errors.Join(errBadRecord, errors.New("tag count out of range"))
	}
	if ntags > 0 && full {
		r.tags = make([]string, 0, ntags)
	}
	for range ntags {
		if full {
			r.tags = append(r.tags, string(d.bytes("tag", maxTagLen)))
		} else {
			d.skip("tag", maxTagLen)
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errors.Join(errBadRecord, errors.New("trailing bytes"))
	}
	if r.key == "" {
		return errors.Join(errBadRecord, errors.New("empty key"))
	}
	return nil
}
