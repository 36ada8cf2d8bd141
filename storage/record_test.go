package storage

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleRecord() *record {
	return &record{
		key: "https://example.com/a?b=c", header: []byte("HTTP/1.1 200\x00h"), size: BlockSize + 3, id: 0xdeadbeef01,
		blockSize: BlockSize, crcs: []uint32{1, 0xffffffff}, stored: time.Unix(1700000000, 5),
		expires: time.Unix(1700003600, 0), atime: time.Unix(1700000100, 7), tags: []string{"a", "b"},
	}
}

func packedRecord() *record {
	r := sampleRecord()
	r.seg, r.off = 0x6574000000000007, 5<<20
	return r
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []*record{
		sampleRecord(),
		{key: "k", blockSize: BlockSize}, // empty body, zero times, no tags
		packedRecord(),
	} {
		got, err := decodeRecord(encodeRecord(nil, r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(r)) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

// normalize makes records comparable with DeepEqual (time locations, nil vs
// empty slices).
func normalize(r *record) record {
	c := *r
	c.stored, c.expires, c.atime = c.stored.UTC(), c.expires.UTC(), c.atime.UTC()
	if len(c.header) == 0 {
		c.header = nil
	}
	if len(c.crcs) == 0 {
		c.crcs = nil
	}
	if len(c.tags) == 0 {
		c.tags = nil
	}
	return c
}

func TestDecodeRecordRejects(t *testing.T) {
	good := encodeRecord(nil, sampleRecord())
	cases := map[string][]byte{
		"empty":         nil,
		"bad version":   append([]byte{9}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"only version":  {recordVersion},
		"huge key len":  {recordVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"wrong nblocks": encodeRecord(nil, &record{key: "k", size: 10, blockSize: BlockSize}),
		"zero blocksz":  encodeRecord(nil, &record{key: "k"}),
		"packed, seg 0": append([]byte{recordPacked}, good[1:]...),
		"packed trunc":  encodeRecord(nil, packedRecord())[:20],
	}
	for name, b := range cases {
		if _, err := decodeRecord(b); !errors.Is(err, errBadRecord) {
			t.Errorf("%s: err = %v, want errBadRecord", name, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, sampleRecord()))
	f.Add(encodeRecord(nil, &record{key: "k", blockSize: BlockSize}))
	f.Add(encodeRecord(nil, packedRecord()))
	f.Add([]byte{recordVersion, 1, 'k', 0, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{recordVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		var sh record
		if serr := decodeShadow(&sh, b); (serr == nil) != (err == nil) {
			t.Fatalf("decodeRecord: %v; decodeShadow: %v", err, serr)
		}
		if err != nil {
			return
		}
		if sh.key != r.key || sh.size != r.size || sh.id != r.id || sh.seg != r.seg || sh.off != r.off ||
			!sh.atime.Equal(r.atime) || !sh.expires.Equal(r.expires) || !sh.stored.Equal(r.stored) {
			t.Fatalf("decodeShadow disagrees: %+v, %+v", sh, r)
		}
		again, err := decodeRecord(encodeRecord(nil, r))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(r)) {
			t.Fatalf("re-encode changed record")
		}
	})
}
