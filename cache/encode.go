package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/edged-proxy/edged/cache/coding"
)

// The disk tier stores an entry's metadata as an opaque byte block; this is
// its encoding. Version 3 (version 2, still read, ends after the tags):
//
//	byte     version (3)
//	uvarint  status
//	varint   request time, response time, Date (unix ns; 0 = zero time)
//	varint   Age value, lifetime, stale-while-revalidate, stale-if-error (ns)
//	byte     flags: 1 heuristic, 2 no-cache, 4 must-revalidate, 8 Vary marker,
//	         16, 32, 64: compressed variants stored (coding.Set << 4)
//	uvarint  marker id
//	uvarint  n, then n × (string name, string value)       Vary
//	uvarint  n, then n × (string key, uvarint m, m × string) header
//	uvarint  n, then n × string                             purge tags
//	uvarint  n, then n × string                             no-cache fields
//
// where string is a uvarint length and the bytes.
const entryEncodingVersion = 3

// Limits that keep a corrupt or hostile block from allocating much.
const (
	maxEncodedFields = 1 << 12
	maxEncodedString = 1 << 20
)

var errBadEncoding = errors.New("cache: malformed stored entry")

func encodeEntry(e *Entry) []byte {
	b := make([]byte, 0, 256)
	b = append(b, entryEncodingVersion)
	b = binary.AppendUvarint(b, uint64(e.Status))
	for _, t := range [...]time.Time{e.Timing.RequestTime, e.Timing.ResponseTime, e.Timing.Date} {
		b = binary.AppendVarint(b, unixNano(t))
	}
	b = binary.AppendVarint(b, int64(e.Timing.AgeValue))
	b = binary.AppendVarint(b, int64(e.Lifetime))
	b = binary.AppendVarint(b, int64(e.StaleWhileRevalidate))
	b = binary.AppendVarint(b, int64(e.StaleIfError))
	var flags byte
	if e.Heuristic {
		flags |= 1
	}
	if e.NoCache {
		flags |= 2
	}
	if e.MustRevalidate {
		flags |= 4
	}
	if e.Marker {
		flags |= 8
	}
	flags |= byte(e.Codings&0x7) << 4
	b = append(b, flags)
	b = binary.AppendUvarint(b, e.MarkerID)
	b = binary.AppendUvarint(b, uint64(len(e.Vary)))
	for i, name := range e.Vary {
		b = appendString(b, name)
		v := "" // a marker stores names only
		if i < len(e.VaryValues) {
			v = e.VaryValues[i]
		}
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vv := range e.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vv)))
		for _, v := range vv {
			b = appendString(b, v)
		}
	}
	b = appendStrings(b, e.Tags)
	b = appendStrings(b, e.NoCacheFields)
	return b
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads an encoded entry, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadEncoding
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint(maxEncodedString)
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// strings reads a list written by appendStrings; nil when empty.
func (d *decoder) strings() []string {
	n := d.uvarint(maxEncodedFields)
	if n == 0 || d.err != nil {
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, d.string())
	}
	return ss
}

// decodeEntry rebuilds the metadata of an entry (everything but Key and
// Body) from encodeEntry's output.
func decodeEntry(b []byte) (*Entry, error) {
	d := &decoder{b: b}
	version := d.byte()
	if d.err == nil && version != entryEncodingVersion && version != 2 {
		return nil, fmt.Errorf("%w: version %d", errBadEncoding, version)
	}
	e := &Entry{Status: int(d.uvarint(999)), Memo: new(Memo)}
	e.Timing.RequestTime = fromUnixNano(d.varint())
	e.Timing.ResponseTime = fromUnixNano(d.varint())
	e.Timing.Date = fromUnixNano(d.varint())
	e.Timing.AgeValue = time.Duration(d.varint())
	e.Lifetime = time.Duration(d.varint())
	e.StaleWhileRevalidate = time.Duration(d.varint())
	e.StaleIfError = time.Duration(d.varint())
	flags := d.byte()
	e.Heuristic, e.NoCache, e.MustRevalidate, e.Marker = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0
	e.Codings = coding.Set(flags>>4) & 0x7
	e.MarkerID = d.uvarint(1<<64 - 1)
	if n := d.uvarint(maxEncodedFields); n > 0 {
		e.Vary, e.VaryValues = make([]string, 0, n), make([]string, 0, n)
		for range n {
			e.Vary = append(e.Vary, d.string())
			e.VaryValues = append(e.VaryValues, d.string())
		}
	}
	n := d.uvarint(maxEncodedFields)
	e.Header = make(http.Header, n)
	for range n {
		k := d.string()
		m := d.uvarint(maxEncodedFields)
		if d.err != nil {
			break
		}
		vv := make([]string, 0, m)
		for range m {
			vv = append(vv, d.string())
		}
		e.Header[k] = vv[:len(vv):len(vv)]
	}
	e.Tags = d.strings()
	if version > 2 {
		e.NoCacheFields = d.strings()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil || e.Status < 100 || e.Lifetime < 0 || e.Timing.AgeValue < 0 ||
		e.StaleWhileRevalidate < 0 || e.StaleIfError < 0 {
		return nil, errBadEncoding
	}
	return e, nil
}
