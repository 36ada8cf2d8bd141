package lb

import (
	"slices"
	"testing"
)

func TestParseStatusRanges(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want statusRanges // nil: rejected
	}{
		{"200-399", statusRanges{{200, 399}}},
		{"200", statusRanges{{200, 200}}},
		{"200,204,300-399", statusRanges{{200, 200}, {204, 204}, {300, 399}}},
		{" 200 - 299 , 304 ", statusRanges{{200, 299}, {304, 304}}},
		{"100-599", statusRanges{{100, 599}}},
		{"404-404", statusRanges{{404, 404}}},
		{"", nil},
		{" ", nil},
		{"200,", nil},
		{",200", nil},
		{"200-", nil},
		{"-200", nil},
		{"399-200", nil},
		{"2xx", nil},
		{"099", nil},
		{"600", nil},
		{"2000", nil},
		{"+200", nil},
		{"200-300-400", nil},
		{"200;204", nil},
	} {
		got, err := parseStatusRanges(tc.in)
		switch {
		case tc.want == nil && err == nil:
			t.Errorf("parseStatusRanges(%q) = %v, want an error", tc.in, got)
		case tc.want != nil && err != nil:
			t.Errorf("parseStatusRanges(%q): %v", tc.in, err)
		case !slices.Equal(got, tc.want):
			t.Errorf("parseStatusRanges(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestStatusRangesMatch(t *testing.T) {
	r, err := parseStatusRanges("200-299,304,404-410")
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{199: false, 200: true, 299: true, 300: false, 304: true, 305: false,
		403: false, 404: true, 410: true, 411: false, 503: false} {
		if got := r.match(code); got != want {
			t.Errorf("match(%d) = %v, want %v", code, got, want)
		}
	}
}

// FuzzParseStatusRanges: no input panics; what parses holds valid codes,
// prints back to what parses to the same ranges, and matches exactly the
// codes of its ranges.
func FuzzParseStatusRanges(f *testing.F) {
	for _, s := range []string{"200-399", "200,204,300-399", " 200 - 299 , 304 ", "399-200", "2xx", "", ",", "100-599"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseStatusRanges(s)
		if err != nil {
			return
		}
		if len(r) == 0 {
			t.Fatalf("%q parsed to no range", s)
		}
		for _, x := range r {
			if x.lo < 100 || x.hi > 599 || x.lo > x.hi {
				t.Fatalf("%q parsed to a bad range %v", s, x)
			}
		}
		r2, err := parseStatusRanges(r.String())
		if err != nil || !slices.Equal(r, r2) {
			t.Fatalf("%q parsed to %v, printed %q, which parsed to %v, %v", s, r, r.String(), r2, err)
		}
		for code := 99; code <= 600; code++ {
			in := false
			for _, x := range r {
				in = in || code >= x.lo && code <= x.hi
			}
			if r.match(code) != in {
				t.Fatalf("%q: match(%d) = %v", s, code, !in)
			}
		}
	})
}
