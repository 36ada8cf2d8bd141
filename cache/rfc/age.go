package rfc

import (
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// ageMaxSeconds is the largest delta-seconds value a cache has to represent:
// larger values and overflows become 2^31 (RFC 9111 §1.2.2, §5.1).
const ageMaxSeconds = 1 << 31

// Timing is what RFC 9111 §4.2.3 needs to compute a stored response's age.
// Build it with NewTiming. A zero Timing describes a response received at the
// zero time, so its current age is enormous (always stale).
type Timing struct {
	// RequestTime is when the cache sent the request to the origin. Zero
	// means unknown: the response delay counts as 0.
	RequestTime time.Time
	// ResponseTime is when the cache received the response.
	ResponseTime time.Time
	// Date is the response's Date header. Zero means absent or invalid, and
	// ResponseTime is used in its place.
	Date time.Time
	// AgeValue is the response's Age header; 0 when absent or invalid.
	AgeValue time.Duration
}

// NewTiming returns the Timing of a response received at responseTime for a
// request sent at requestTime, reading Date and Age from the response header
// h. An invalid Date (not an HTTP-date, see ParseHTTPDate) is treated as
// absent. For Age, only the first member of
// the first line is used, an invalid one is ignored, and values above 2^31
// seconds are capped (RFC 9111 §5.1).
func NewTiming(requestTime, responseTime time.Time, h http.Header) Timing {
	t := Timing{RequestTime: requestTime, ResponseTime: responseTime}
	if d, ok := policyHTTPDate(h, "Date", responseTime); ok {
		t.Date = d
	}
	t.AgeValue = ageParseHeader(h)
	return t
}

// CorrectedInitialAge is max(apparent_age, corrected_age_value), where
// apparent_age = max(0, response_time − date_value) and corrected_age_value =
// age_value + response_delay (RFC 9111 §4.2.3). A negative response delay
// (clock skew) counts as 0.
func (t Timing) CorrectedInitialAge() time.Duration {
	date := t.Date
	if date.IsZero() {
		date = t.ResponseTime
	}
	apparent := max(t.ResponseTime.Sub(date), 0)
	var delay time.Duration
	if !t.RequestTime.IsZero() {
		delay = max(t.ResponseTime.Sub(t.RequestTime), 0)
	}
	corrected := ageAdd(max(t.AgeValue, 0), delay)
	return max(apparent, corrected)
}

// CurrentAge is corrected_initial_age + resident_time, where resident_time =
// now − response_time, never negative (RFC 9111 §4.2.3). It saturates
// instead of overflowing.
func (t Timing) CurrentAge(now time.Time) time.Duration {
	return ageAdd(t.CorrectedInitialAge(), max(now.Sub(t.ResponseTime), 0))
}

// AgeHeaderValue formats d for the Age header: whole seconds, rounded down,
// never negative, and at most 2147483648 (RFC 9111 §5.1).
func AgeHeaderValue(d time.Duration) string { return strconv.FormatInt(ageSeconds(d), 10) }

// AppendAgeValue appends AgeHeaderValue(d) to b.
func AppendAgeValue(b []byte, d time.Duration) []byte { return strconv.AppendInt(b, ageSeconds(d), 10) }

// ageSeconds is d in whole seconds, clamped to [0, ageMaxSeconds].
func ageSeconds(d time.Duration) int64 { return min(max(int64(d/time.Second), 0), ageMaxSeconds) }

// ageParseHeader returns the Age of h: the first member of the first line, if
// it is a non-negative integer, else 0.
func ageParseHeader(h http.Header) time.Duration {
	vv := h.Values("Age")
	if len(vv) == 0 {
		return 0
	}
	v, _, _ := strings.Cut(vv[0], ",")
	v = textproto.TrimString(v)
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > ageMaxSeconds { // only digits, so err is a range error
		n = ageMaxSeconds
	}
	return time.Duration(n) * time.Second
}

// ageAdd returns a + b for non-negative a and b, saturating at the largest
// Duration.
func ageAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
