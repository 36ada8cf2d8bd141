package cache

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/edged-proxy/edged/cache/coding"
	"github.com/edged-proxy/edged/cache/rfc"
)

func sampleEntry() *Entry {
	t0 := time.Unix(1700000000, 123456789)
	return &Entry{
		Status:   200,
		Header:   http.Header{"Content-Type": {"text/plain"}, "Set-Thing": {"a", "b"}, "Etag": {`"x"`}},
		Timing:   rfc.Timing{RequestTime: t0, ResponseTime: t0.Add(time.Millisecond), Date: t0.Truncate(time.Second), AgeValue: 3 * time.Second},
		Lifetime: time.Hour, Heuristic: true, MustRevalidate: true,
		Vary: []string{"Accept-Encoding"}, VaryValues: []string{"gzip"},
		StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, Marker: true, MarkerID: 1 << 60,
		Tags: []string{"product-1", "all"}, NoCacheFields: []string{"X-User", "X-Token"},
		Codings: coding.Set(coding.Br | coding.Gzip),
	}
}

func TestEntryEncodingRoundTrip(t *testing.T) {
	for _, e := range []*Entry{sampleEntry(), {Status: 404, Header: http.Header{}}} {
		got, err := decodeEntry(encodeEntry(e))
		if err != nil {
			t.Fatal(err)
		}
		want := *e
		if want.Header == nil {
			want.Header = http.Header{}
		}
		if !got.Timing.RequestTime.Equal(want.Timing.RequestTime) || !got.Timing.Date.Equal(want.Timing.Date) ||
			got.Timing.AgeValue != want.Timing.AgeValue || got.Lifetime != want.Lifetime ||
			got.Status != want.Status || got.Heuristic != want.Heuristic || got.NoCache != want.NoCache ||
			got.MustRevalidate != want.MustRevalidate || !reflect.DeepEqual(got.Header, want.Header) ||
			!reflect.DeepEqual(got.Vary, want.Vary) || !reflect.DeepEqual(got.VaryValues, want.VaryValues) ||
			got.StaleWhileRevalidate != want.StaleWhileRevalidate || got.StaleIfError != want.StaleIfError ||
			got.Marker != want.Marker || got.MarkerID != want.MarkerID || !reflect.DeepEqual(got.Tags, want.Tags) ||
			!reflect.DeepEqual(got.NoCacheFields, want.NoCacheFields) || got.Codings != want.Codings {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

// TestEntryDecodesVersion2 checks that entries a previous edged wrote
// (version 2: no no-cache fields) are still read.
func TestEntryDecodesVersion2(t *testing.T) {
	e := sampleEntry()
	e.NoCacheFields = nil
	b := encodeEntry(e)
	v2 := append([]byte{2}, b[1:len(b)-1]...) // without the empty no-cache list
	got, err := decodeEntry(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tags, e.Tags) || got.NoCacheFields != nil || !reflect.DeepEqual(got.Header, e.Header) {
		t.Errorf("version 2 decoded as %+v", got)
	}
}

func TestEntryDecodingRejectsDamage(t *testing.T) {
	b := encodeEntry(sampleEntry())
	for i := range len(b) {
		if _, err := decodeEntry(b[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := decodeEntry(append(b, 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := append([]byte{entryEncodingVersion + 1}, b[1:]...)
	if _, err := decodeEntry(bad); err == nil {
		t.Error("unknown version: no error")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(sampleEntry()))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same thing.
		e2, err := decodeEntry(encodeEntry(e))
		if err != nil || !reflect.DeepEqual(e.Header, e2.Header) || e.Lifetime != e2.Lifetime {
			t.Fatalf("re-encoding changed the entry: %v", err)
		}
	})
}
