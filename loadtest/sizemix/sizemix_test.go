package sizemix_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/edged-proxy/edged/loadtest/sizemix"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"1KiB", 1024, false},
		{"10kib", 10240, false},
		{"1k", 1024, false},
		{"1kB", 1000, false},
		{"2MB", 2000000, false},
		{"1MiB", 1 << 20, false},
		{"3 GiB", 3 << 30, false},
		{"7B", 7, false},
		{"", 0, true},
		{"-1", 0, true},
		{"1.5KiB", 0, true},
		{"KiB", 0, true},
		{"1TiB", 0, true},
	} {
		got, err := sizemix.ParseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, sizemix.ErrSyntax) {
			t.Errorf("ParseSize(%q) error %v does not wrap ErrSyntax", tc.in, err)
		}
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"1KiB:70,10KiB:25,100KiB:5", "1KiB:70,10KiB:25,100KiB:5", false},
		{"1KiB", "1KiB:1", false},
		{" 1KiB : 3 , 2048 ", "1KiB:3,2KiB:1", false},
		{"1KiB-100KiB", "1KiB-100KiB:1", false},
		{"", "", false},
		{"1KiB:0", "", true},
		{"1KiB:x", "", true},
		{"10KiB-1KiB", "", true},
		{"1KiB,,2KiB", "", true},
	} {
		m, err := sizemix.Parse(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("Parse(%q) error %v, want error=%v", tc.in, err, tc.err)
			continue
		}
		if got := m.String(); !tc.err && got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPickDeterministicAndWeighted(t *testing.T) {
	m, err := sizemix.Parse("1KiB:70,10KiB:25,100KiB:5")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int64]int{}
	const n = 20000
	for i := range n {
		id := "k" + strconv.Itoa(i)
		a, _ := m.Pick(id)
		b, _ := m.Pick(id)
		if a != b {
			t.Fatalf("Pick(%q) not deterministic: %d then %d", id, a, b)
		}
		counts[a]++
	}
	for size, want := range map[int64]float64{1024: .70, 10240: .25, 102400: .05} {
		got := float64(counts[size]) / n
		if got < want-0.02 || got > want+0.02 {
			t.Errorf("size %d picked %.3f of the time, want ~%.2f", size, got, want)
		}
	}
	r, _ := sizemix.Parse("1KiB-100KiB")
	for i := range 1000 {
		s, ok := r.Pick(strconv.Itoa(i))
		if !ok || s < 1024 || s > 102400 {
			t.Fatalf("range pick %d outside [1KiB,100KiB]", s)
		}
	}
	if _, ok := (sizemix.Mix{}).Pick("x"); ok {
		t.Error("empty Mix picked a size")
	}
}
