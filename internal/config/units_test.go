package config_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/edged-proxy/edged/internal/config"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"512B", 512, ""},
		{"64KiB", 64 << 10, ""},
		{"64 KiB", 64 << 10, ""},
		{"256MiB", 256 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"10kB", 10_000, ""},
		{"10KB", 10_000, ""},
		{"10MB", 10_000_000, ""},
		{"3GB", 3_000_000_000, ""},
		{"1TB", 1_000_000_000_000, ""},
		{"", 0, `invalid size ""`},
		{"KiB", 0, `invalid size "KiB"`},
		{"1.5GiB", 0, `invalid size "1.5GiB"`},
		{"10mb", 0, `invalid size "10mb"`},
		{"-1KiB", 0, `invalid size "-1KiB": must not be negative`},
		{"9223372036854775807", 9223372036854775807, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608TiB", 0, "too large"},
	} {
		got, err := config.ParseByteSize(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseByteSize(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
		case err != nil || got.Int64() != tc.want:
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   config.ByteSize
		want string
	}{
		{0, "0"},
		{512, "512B"},
		{64 * config.KiB, "64KiB"},
		{1536 * config.KiB, "1536KiB"},
		{config.GiB, "1GiB"},
		{10 * config.MB, "10MB"},
		{1000, "1kB"},
		{1001, "1001B"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := config.ParseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("round trip of %d: %d, %v", int64(tc.in), back, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"0", 0, ""},
		{"5s", 5 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"24h", 24 * time.Hour, ""},
		{"5", 0, `invalid duration "5"`},
		{"5 parsecs", 0, `invalid duration "5 parsecs"`},
		{"1d", 0, `invalid duration "1d"`},
		{"-1s", 0, `invalid duration "-1s": must not be negative`},
	} {
		got, err := config.ParseDuration(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
		case err != nil || got.Std() != tc.want:
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// Duration and ByteSize work as flag values via flag.TextVar.
func TestTextVar(t *testing.T) {
	fs := flag.NewFlagSet("edged", flag.ContinueOnError)
	var d config.Duration
	var s config.ByteSize
	fs.TextVar(&d, "d", config.Duration(time.Second), "")
	fs.TextVar(&s, "s", 64*config.KiB, "")
	if err := fs.Parse([]string{"-d", "1m30s", "-s", "1MiB"}); err != nil {
		t.Fatal(err)
	}
	if d.Std() != 90*time.Second || s != config.MiB {
		t.Errorf("got d=%v s=%v", d, s)
	}
	fs.SetOutput(new(strings.Builder))
	if err := fs.Parse([]string{"-d", "-1s"}); err == nil {
		t.Error("negative duration flag accepted")
	}
}
