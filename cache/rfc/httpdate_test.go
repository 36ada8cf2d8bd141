package rfc

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// dateNow is the reference time of the table: 2026, so that an rfc850 "76"
// is more than 50 years ahead (1976) and "75" is not (2075).
var dateNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestParseHTTPDate checks the three forms of RFC 9110 §5.6.7 and refuses
// everything the grammar does not produce, with the relaxations of RFC
// 9111 §4.2 (case) and of the file comment (leap second, day name).
func TestParseHTTPDate(t *testing.T) {
	sunday := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: not a date
	}{
		// The RFC's own examples (§5.6.7).
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", sunday},
		{"rfc850-date", "Sunday, 06-Nov-94 08:49:37 GMT", sunday},
		{"asctime-date", "Sun Nov  6 08:49:37 1994", sunday},
		{"asctime two-digit day", "Sun Nov 16 08:49:37 1994", sunday.AddDate(0, 0, 10)},
		{"asctime zero-padded day", "Sun Nov 06 08:49:37 1994", sunday},

		// RFC 9111 §4.2: a cache matches case-insensitively.
		{"lower case IMF", "sun, 06 nov 1994 08:49:37 gmt", sunday},
		{"upper case IMF", "SUN, 06 NOV 1994 08:49:37 GMT", sunday},
		{"upper case rfc850", "SUNDAY, 06-NOV-94 08:49:37 GMT", sunday},
		{"lower case asctime", "sun nov  6 08:49:37 1994", sunday},
		{"non-ASCII fold is not a fold (long s)", "\u017funday, 06-Nov-94 08:49:37 GMT", time.Time{}},
		{"non-ASCII fold is not a fold (Kelvin)", "Sun, 06 Nov 1994 08:49:37 GM\u212a", time.Time{}},

		// rfc850's two-digit year (§5.6.7: more than 50 years ahead means
		// the century before).
		{"rfc850 year under 50 years ahead stays", "Monday, 01-Jan-75 00:00:00 GMT", time.Date(2075, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"rfc850 year over 50 years ahead is last century", "Friday, 06-Nov-76 08:49:37 GMT", time.Date(1976, 11, 6, 8, 49, 37, 0, time.UTC)},
		{"rfc850 year this century", "Sunday, 01-Mar-26 00:00:00 GMT", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"rfc850 year 00", "Saturday, 01-Jan-00 00:00:00 GMT", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},

		// Values: the date must exist; second 60 is a leap second.
		{"leap day", "Thu, 29 Feb 2024 00:00:00 GMT", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"leap second", "Sat, 31 Dec 2016 23:59:60 GMT", time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"day name not checked", "Mon, 06 Nov 1994 08:49:37 GMT", sunday},
		{"no 29 Feb in 2023", "Wed, 29 Feb 2023 00:00:00 GMT", time.Time{}},
		{"no 31 Apr", "Wed, 31 Apr 2024 00:00:00 GMT", time.Time{}},
		{"no day 00", "Sun, 00 Nov 1994 08:49:37 GMT", time.Time{}},
		{"no hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", time.Time{}},
		{"no minute 60", "Sun, 06 Nov 1994 08:60:37 GMT", time.Time{}},
		{"no second 61", "Sun, 06 Nov 1994 08:49:61 GMT", time.Time{}},

		// Whitespace: exactly the grammar's SP.
		{"double space after comma", "Sun,  06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"double space before GMT", "Sun, 06 Nov 1994 08:49:37  GMT", time.Time{}},
		{"double space in rfc850", "Sunday,  06-Nov-94 08:49:37 GMT", time.Time{}},
		{"asctime double space before two-digit day", "Sun Nov  16 08:49:37 1994", time.Time{}},
		{"asctime double space before year", "Sun Nov  6 08:49:37  1994", time.Time{}},
		{"tab for space", "Sun,\t06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"leading space", " Sun, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"trailing space", "Sun, 06 Nov 1994 08:49:37 GMT ", time.Time{}},
		{"no space after comma", "Sun,06 Nov 1994 08:49:37 GMT", time.Time{}},

		// Digits: two for day and clock, four (two) for the year.
		{"one-digit hour", "Sun, 06 Nov 1994 8:49:37 GMT", time.Time{}},
		{"one-digit day", "Sun, 6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"rfc850 one-digit hour", "Sunday, 06-Nov-94 8:49:37 GMT", time.Time{}},
		{"rfc850 four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"IMF two-digit year", "Sun, 06 Nov 94 08:49:37 GMT", time.Time{}},
		{"asctime one-digit hour", "Sun Nov  6 8:49:37 1994", time.Time{}},
		{"sign in a number", "Sun, +6 Nov 1994 08:49:37 GMT", time.Time{}},

		// Zones and names.
		{"UTC is not GMT", "Sun, 06 Nov 1994 08:49:37 UTC", time.Time{}},
		{"numeric zone", "Sun, 06 Nov 1994 08:49:37 +0000", time.Time{}},
		{"rfc850 with another zone", "Sunday, 06-Nov-94 08:49:37 PST", time.Time{}},
		{"unknown month", "Sun, 06 Foo 1994 08:49:37 GMT", time.Time{}},
		{"long month", "Sun, 06 November 1994 08:49:37 GMT", time.Time{}},
		{"unknown day", "Xyz, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"short day in rfc850", "Sun, 06-Nov-94 08:49:37 GMT", time.Time{}},
		{"long day in IMF", "Sunday, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"asctime with zone", "Sun Nov  6 08:49:37 GMT 1994", time.Time{}},

		// Not dates at all (RFC 9111 §5.3's examples of invalid Expires).
		{"zero", "0", time.Time{}},
		{"minus one", "-1", time.Time{}},
		{"empty", "", time.Time{}},
		{"unix time", "784111777", time.Time{}},
		{"ISO 8601", "1994-11-06T08:49:37Z", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseHTTPDate(tc.in, dateNow)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Errorf("ParseHTTPDate(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
			}
			if ok && got.Location() != time.UTC {
				t.Errorf("location %v, want UTC", got.Location())
			}
		})
	}
}

// TestParseHTTPDateStricterThanGo lists inputs that Go's http.ParseTime
// accepts and the grammar does not: the reason this parser exists.
func TestParseHTTPDateStricterThanGo(t *testing.T) {
	for _, in := range []string{
		"Sun, 06 Nov 1994 8:49:37 GMT",
		"Sun Nov  6 8:49:37 1994",
		"Sunday, 06-Nov-94 08:49:37 PST",
		"Sunday, 06-Nov-94 8:49:37 GMT",
	} {
		if _, err := http.ParseTime(in); err != nil {
			t.Errorf("http.ParseTime(%q) fails (%v): the case no longer shows a difference", in, err)
		}
		if got, ok := ParseHTTPDate(in, dateNow); ok {
			t.Errorf("ParseHTTPDate(%q) = %v, want refused", in, got)
		}
	}
}

// FuzzParseHTTPDate holds the parser to the grammar's shape and to Go's
// reading of the canonical form: whatever it accepts has one of the three
// lengths, only the grammar's characters, and a time that formats as an
// IMF-fixdate which both parsers read back as the same instant.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"sun, 29 feb 2024 23:59:60 gmt", "Sun, 06 Nov 1994 8:49:37 GMT", "0",
	} {
		f.Add(s, int64(0))
	}
	f.Fuzz(func(t *testing.T, in string, nowSec int64) {
		now := time.Unix(nowSec%(1<<40), 0)
		got, ok := ParseHTTPDate(in, now)
		if !ok {
			if !got.IsZero() {
				t.Fatalf("refused %q but returned %v", in, got)
			}
			return
		}
		switch n := len(in); {
		case n == dateIMFLen, n == dateASCTimeLen, n >= len("Monday, 06-Nov-94 08:49:37 GMT") && n <= len("Wednesday, 06-Nov-94 08:49:37 GMT"):
		default:
			t.Fatalf("accepted %q of length %d", in, n)
		}
		if strings.Trim(in, "0123456789 ,-:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Fatalf("accepted %q with characters outside the grammar", in)
		}
		imf := got.Format(http.TimeFormat)
		back, ok := ParseHTTPDate(imf, now)
		if !ok || !back.Equal(got) {
			t.Fatalf("%q → %v → %q → %v, %v", in, got, imf, back, ok)
		}
		if got.Year() >= 0 && got.Year() <= 9999 {
			if goT, err := http.ParseTime(imf); err != nil || !goT.Equal(got) {
				t.Fatalf("http.ParseTime(%q) = %v, %v; we read %v", imf, goT, err, got)
			}
		}
	})
}
