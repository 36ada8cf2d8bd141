package rfc

// This file parses HTTP-dates (RFC 9110 §5.6.7) exactly as the grammar has
// them, for every date field edged reads (Date, Expires, Last-Modified,
// If-Modified-Since, If-Range). Go's http.ParseTime is looser: it takes
// one-digit hours and days, any zone name in the rfc850 form, and years
// "69" to "99" as 19xx whatever the date.
//
// Choices, each with a test in httpdate_test.go:
//   - Day names, month names and "GMT" match case-insensitively (ASCII
//     only). RFC 9110 §5.6.7 makes HTTP-date case-sensitive but defers to
//     RFC 9111 §4.2, which says a cache recipient SHOULD match date values
//     case-insensitively; edged is a cache.
//   - Nothing else is relaxed: one SP where the grammar has SP (the padding
//     space of asctime's one-digit day is the grammar's own), two digits for
//     day, hour, minute and second, four for the year (two in rfc850-date),
//     no leading or trailing whitespace (callers strip the field's OWS), and
//     "GMT" is the only zone.
//   - The date must exist (no 31 Feb, no hour 24); second 60 (a leap second,
//     RFC 5322 §3.3) is accepted and means the next minute's second 0.
//   - The day name is not checked against the date: the grammar does not tie
//     them, and the date alone says when.
//   - An rfc850-date's two-digit year is read in the century of now, unless
//     that is more than 50 years after now, in which case it is the century
//     before (RFC 9110 §5.6.7: such a date "MUST" mean the most recent year
//     in the past with those digits).

import "time"

// Lengths of the fixed-length forms: "Sun, 06 Nov 1994 08:49:37 GMT" and
// "Sun Nov  6 08:49:37 1994".
const (
	dateIMFLen     = 29
	dateASCTimeLen = 24
)

var (
	dateDayNames  = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	dateLongDays  = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	dateMonthName = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// ParseHTTPDate parses v as an HTTP-date (RFC 9110 §5.6.7): an IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT"), an rfc850-date ("Sunday, 06-Nov-94
// 08:49:37 GMT") or an asctime-date ("Sun Nov  6 08:49:37 1994"). now is
// the reference for an rfc850-date's two-digit year and is used for nothing
// else. ok is false for anything that is not exactly one of the three forms
// (see the file comment for the few relaxations); t is then zero. t is in
// UTC.
func ParseHTTPDate(v string, now time.Time) (t time.Time, ok bool) {
	switch {
	case len(v) == dateIMFLen && v[3] == ',':
		return dateIMF(v)
	case len(v) == dateASCTimeLen && v[3] == ' ':
		return dateASCTime(v)
	}
	return dateRFC850(v, now)
}

// dateIMF parses "Sun, 06 Nov 1994 08:49:37 GMT" (length checked).
func dateIMF(v string) (time.Time, bool) {
	if dateName(v[:3], dateDayNames[:]) < 0 || v[3:5] != ", " || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' || v[25] != ' ' ||
		!dateFold(v[26:], "GMT") {
		return time.Time{}, false
	}
	year, ok := dateDigits(v[12:16])
	if !ok {
		return time.Time{}, false
	}
	return dateBuild(v[5:7], v[8:11], year, v[17:25])
}

// dateASCTime parses "Sun Nov  6 08:49:37 1994" (length checked): asctime's
// day is two digits or a space and one digit.
func dateASCTime(v string) (time.Time, bool) {
	if dateName(v[:3], dateDayNames[:]) < 0 || v[3] != ' ' || v[7] != ' ' || v[10] != ' ' || v[19] != ' ' {
		return time.Time{}, false
	}
	day := v[8:10]
	if day[0] == ' ' {
		day = "0" + day[1:]
	}
	year, ok := dateDigits(v[20:24])
	if !ok {
		return time.Time{}, false
	}
	return dateBuild(day, v[4:7], year, v[11:19])
}

// dateRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT".
func dateRFC850(v string, now time.Time) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(v) && i <= len("Wednesday"); i++ {
		if v[i] == ',' {
			comma = i
			break
		}
	}
	const rest = len(", 06-Nov-94 08:49:37 GMT")
	if comma < 0 || len(v)-comma != rest || dateName(v[:comma], dateLongDays[:]) < 0 {
		return time.Time{}, false
	}
	r := v[comma:]
	if r[:2] != ", " || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20] != ' ' || !dateFold(r[21:], "GMT") {
		return time.Time{}, false
	}
	yy, ok := dateDigits(r[9:11])
	if !ok {
		return time.Time{}, false
	}
	// The century of now, or the one before when that is more than 50
	// years ahead of now (RFC 9110 §5.6.7).
	year := now.UTC().Year() - now.UTC().Year()%100 + yy
	t, ok := dateBuild(r[2:4], r[5:8], year, r[12:20])
	if ok && t.After(now.AddDate(50, 0, 0)) {
		t, ok = dateBuild(r[2:4], r[5:8], year-100, r[12:20])
	}
	return t, ok
}

// dateBuild checks and assembles a two-digit day, a month name, a year and
// "HH:MM:SS".
func dateBuild(day, month string, year int, clock string) (time.Time, bool) {
	m := dateName(month, dateMonthName[:])
	d, okD := dateDigits(day)
	hh, okH := dateDigits(clock[0:2])
	mm, okM := dateDigits(clock[3:5])
	ss, okS := dateDigits(clock[6:8])
	if m < 0 || !okD || !okH || !okM || !okS || clock[2] != ':' || clock[5] != ':' ||
		hh > 23 || mm > 59 || ss > 60 || d < 1 || d > dateDaysIn(time.Month(m+1), year) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(m+1), d, hh, mm, ss, 0, time.UTC), true
}

// dateDaysIn is the number of days of month in year (proleptic Gregorian).
func dateDaysIn(month time.Month, year int) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// dateDigits reads s, all ASCII digits, as a decimal number.
func dateDigits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

// dateName returns the index of s in names, matched ASCII
// case-insensitively, or -1.
func dateName(s string, names []string) int {
	for i, n := range names {
		if dateFold(s, n) {
			return i
		}
	}
	return -1
}

// dateFold reports whether s and t are equal under ASCII case folding only
// (strings.EqualFold would also fold the Kelvin sign to 'k' and ſ to 's').
func dateFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
