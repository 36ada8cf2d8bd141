package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-99/100", ContentRange{0, 99, 100}, true},
		{"bytes 5-5/*", ContentRange{5, 5, -1}, true},
		{"bytes */4294967296", ContentRange{-1, -1, 4294967296}, true},
		{"Bytes 1048576-2097151/4294967296", ContentRange{1048576, 2097151, 4294967296}, true},
		{" bytes  0-0/1 ", ContentRange{0, 0, 1}, true},
		{"bytes 0-100/100", ContentRange{}, false}, // past the end
		{"bytes 9-1/100", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes 0-99", ContentRange{}, false},
		{"items 0-99/100", ContentRange{}, false},
		{"bytes -1-5/10", ContentRange{}, false},
		{"bytes +1-5/10", ContentRange{}, false},
		{"bytes 0-5/1e3", ContentRange{}, false},
		{"bytes 0-99999999999999999999/*", ContentRange{}, false},
		{"", ContentRange{}, false},
	} {
		got, ok := ParseContentRange(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseContentRange: whatever the input, an accepted value is
// consistent and formats back to a value that parses to the same.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes */5", "bytes 3-4/*", "bytes 0-0/0", "bytes 1-/2", "bytes  */ 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, ok := ParseContentRange(s)
		if !ok {
			return
		}
		var again string
		total := "*"
		if cr.Total >= 0 {
			total = strconv.FormatInt(cr.Total, 10)
		}
		switch {
		case cr.First < 0:
			if cr.Last != -1 || cr.Total < 0 {
				t.Fatalf("%q: unsatisfied form %+v", s, cr)
			}
			again = "bytes */" + total
		default:
			if cr.Last < cr.First || cr.Total >= 0 && cr.Last >= cr.Total {
				t.Fatalf("%q: inconsistent %+v", s, cr)
			}
			again = fmt.Sprintf("bytes %d-%d/%s", cr.First, cr.Last, total)
		}
		if cr2, ok := ParseContentRange(again); !ok || cr2 != cr {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, cr, again, cr2, ok)
		}
	})
}

func TestSliceAccept(t *testing.T) {
	spec := sliceSpec{index: 1, off: 100, size: 100}
	for _, tc := range []struct {
		name   string
		status int
		cr     []string
		etag   string
		length int64
		ok     bool
	}{
		{"the slice", 206, []string{"bytes 100-199/1000"}, `"x"`, 100, true},
		{"the short last slice", 206, []string{"bytes 100-149/150"}, `"x"`, 50, true},
		{"unknown length", 206, []string{"bytes 100-199/1000"}, `"x"`, -1, true},
		{"whole body", 200, nil, `"x"`, 1000, false},
		{"another range", 206, []string{"bytes 100-150/1000"}, `"x"`, 51, false},
		{"unknown total", 206, []string{"bytes 100-199/*"}, `"x"`, 100, false},
		{"two Content-Range", 206, []string{"bytes 100-199/1000", "bytes 100-199/1000"}, `"x"`, 100, false},
		{"weak ETag", 206, []string{"bytes 100-199/1000"}, `W/"x"`, 100, false},
		{"no ETag", 206, []string{"bytes 100-199/1000"}, "", 100, false},
		{"length differs", 206, []string{"bytes 100-199/1000"}, `"x"`, 99, false},
	} {
		h := http.Header{}
		if tc.cr != nil {
			h["Content-Range"] = tc.cr
		}
		if tc.etag != "" {
			h.Set("Etag", tc.etag)
		}
		if got := spec.accept(&http.Response{StatusCode: tc.status, Header: h, ContentLength: tc.length}); got != tc.ok {
			t.Errorf("%s: accept = %v", tc.name, got)
		}
	}
}

func TestSliceKeys(t *testing.T) {
	k := sliceKey("http://example.com/v.mp4", 12)
	if obj, ok := sliceObjectKey(k); !ok || obj != "http://example.com/v.mp4" || countedKey(k) != obj {
		t.Errorf("sliceObjectKey(%q) = %q, %v", k, obj, ok)
	}
	if URLKey(k) != "http://example.com/v.mp4" || URLKey("http://e.com/a\x01h") != "http://e.com/a" {
		t.Errorf("URLKey of a slice key: %q", URLKey(k))
	}
	if isMarkerKey(k) || isCodedKey(k) {
		t.Error("a slice key taken for a marker or a compressed variant")
	}
}
