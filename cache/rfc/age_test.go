package rfc

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestAgeNewTiming(t *testing.T) {
	req, resp := polT0, polT0.Add(2*time.Second)
	tests := []struct {
		name     string
		h        http.Header
		wantDate time.Time
		wantAge  time.Duration
	}{
		{"nothing", http.Header{}, time.Time{}, 0},
		{"nil header", nil, time.Time{}, 0},
		{"Date and Age", polHeader("Date", polDate(polT0), "Age", "60"), polT0, time.Minute},
		{"RFC 850 Date", polHeader("Date", "Friday, 01-Mar-24 12:00:00 GMT"), polT0, 0},
		{"asctime Date", polHeader("Date", "Fri Mar  1 12:00:00 2024"), polT0, 0},
		{"invalid Date", polHeader("Date", "now"), time.Time{}, 0},
		{"Age spaces", polHeader("Age", " 7 "), time.Time{}, 7 * time.Second},
		{"Age list uses first", polHeader("Age", "7, 30"), time.Time{}, 7 * time.Second},
		{"Age lines use first", polHeader("Age", "7", "Age", "30"), time.Time{}, 7 * time.Second},
		{"Age negative", polHeader("Age", "-7"), time.Time{}, 0},
		{"Age plus sign", polHeader("Age", "+7"), time.Time{}, 0},
		{"Age fraction", polHeader("Age", "1.5"), time.Time{}, 0},
		{"Age garbage", polHeader("Age", "old"), time.Time{}, 0},
		{"Age empty", polHeader("Age", ""), time.Time{}, 0},
		{"Age 2^31", polHeader("Age", "2147483648"), time.Time{}, 1 << 31 * time.Second},
		{"Age above 2^31", polHeader("Age", "2147483649"), time.Time{}, 1 << 31 * time.Second},
		{"Age overflows uint64", polHeader("Age", "99999999999999999999999999"), time.Time{}, 1 << 31 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewTiming(req, resp, tt.h)
			want := Timing{RequestTime: req, ResponseTime: resp, Date: tt.wantDate, AgeValue: tt.wantAge}
			if !got.Date.Equal(want.Date) || got.AgeValue != want.AgeValue ||
				got.RequestTime != want.RequestTime || got.ResponseTime != want.ResponseTime {
				t.Errorf("NewTiming = %+v, want %+v", got, want)
			}
		})
	}
}

func TestAgeCorrectedInitialAge(t *testing.T) {
	const s = time.Second
	at := func(d time.Duration) time.Time { return polT0.Add(d) }
	tests := []struct {
		name string
		t    Timing
		want time.Duration
	}{
		{"zero value", Timing{}, 0},
		{"only response delay", Timing{RequestTime: at(0), ResponseTime: at(2 * s)}, 2 * s},
		{"apparent age wins", Timing{RequestTime: at(0), ResponseTime: at(2 * s), Date: at(-10 * s)}, 12 * s},
		{"Age plus delay wins", Timing{RequestTime: at(0), ResponseTime: at(2 * s), Date: at(-10 * s), AgeValue: 30 * s}, 32 * s},
		{"Date in the future", Timing{RequestTime: at(0), ResponseTime: at(2 * s), Date: at(time.Hour)}, 2 * s},
		{"response before request", Timing{RequestTime: at(5 * s), ResponseTime: at(0), AgeValue: 3 * s}, 3 * s},
		{"unknown request time", Timing{ResponseTime: at(0), AgeValue: 3 * s}, 3 * s},
		{"negative AgeValue", Timing{RequestTime: at(0), ResponseTime: at(0), AgeValue: -time.Hour}, 0},
		{"ancient Date saturates", Timing{RequestTime: at(0), ResponseTime: at(0), Date: time.Date(2, 1, 1, 0, 0, 0, 0, time.UTC)}, math.MaxInt64},
		{"huge Age saturates", Timing{RequestTime: at(0), ResponseTime: at(time.Hour), AgeValue: math.MaxInt64}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.CorrectedInitialAge(); got != tt.want {
				t.Errorf("CorrectedInitialAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAgeCurrentAge(t *testing.T) {
	const s = time.Second
	tm := Timing{RequestTime: polT0, ResponseTime: polT0.Add(s), Date: polT0.Add(-4 * s), AgeValue: 10 * s}
	// corrected_initial_age = max(5s, 10s+1s) = 11s.
	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"at response", polT0.Add(s), 11 * s},
		{"resident a minute", polT0.Add(61 * s), 71 * s},
		{"clock went back", polT0.Add(-time.Hour), 11 * s},
		{"far future saturates", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tm.CurrentAge(tt.now); got != tt.want {
				t.Errorf("CurrentAge(%v) = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
	// End to end: a response carrying Age, received with delay.
	h := polHeader("Date", polDate(polT0), "Age", "100")
	got := NewTiming(polT0.Add(time.Second), polT0.Add(3*time.Second), h).CurrentAge(polT0.Add(63 * time.Second))
	if want := 162 * time.Second; got != want { // 100 + 2 delay + 60 resident
		t.Errorf("CurrentAge = %v, want %v", got, want)
	}
}

func TestAgeHeaderValue(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{999 * time.Millisecond, "0"},
		{1900 * time.Millisecond, "1"},
		{time.Hour, "3600"},
		{-time.Nanosecond, "0"},
		{-time.Hour, "0"},
		{math.MinInt64, "0"},
		{(1<<31 - 1) * time.Second, "2147483647"},
		{1 << 31 * time.Second, "2147483648"},
		{(1<<31 + 1) * time.Second, "2147483648"},
		{math.MaxInt64, "2147483648"},
	}
	for _, tt := range tests {
		if got := AgeHeaderValue(tt.d); got != tt.want {
			t.Errorf("AgeHeaderValue(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func FuzzAgeTiming(f *testing.F) {
	f.Add("Fri, 01 Mar 2024 12:00:00 GMT", "60", int64(0), int64(1e9), int64(5e9))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", "99999999999999999999", int64(math.MaxInt64), int64(math.MinInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, date, age string, req, resp, now int64) {
		h := http.Header{}
		h.Set("Date", date)
		h.Set("Age", age)
		tm := NewTiming(time.Unix(0, req), time.Unix(0, resp), h)
		if tm.AgeValue < 0 || tm.AgeValue > 1<<31*time.Second {
			t.Fatalf("AgeValue out of range: %v", tm.AgeValue)
		}
		initial := tm.CorrectedInitialAge()
		current := tm.CurrentAge(time.Unix(0, now))
		if initial < 0 || current < initial {
			t.Fatalf("initial %v, current %v", initial, current)
		}
		if v := AgeHeaderValue(current); v == "" || v[0] == '-' {
			t.Fatalf("AgeHeaderValue(%v) = %q", current, v)
		}
	})
}
