package config

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Duration is a non-negative length of time written as a Go duration
// string ("500ms", "5s", "1m30s", "24h") or as the bare number 0. The zero
// value is 0; what 0 means is documented on each field that uses it.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d the way time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler, so a Duration can be used
// with flag.TextVar.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the rules of
// ParseDuration.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses a Go duration string such as "5s" or "1m30s"; "0"
// is accepted and negative durations are rejected.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(v), nil
}

// ByteSize is a non-negative number of bytes, written either as an integer
// (65536) or as an integer with a unit: "512B", decimal "10kB"/"10KB",
// "10MB", "10GB", "10TB" (powers of 1000) or binary "64KiB", "256MiB",
// "1GiB", "1TiB" (powers of 1024). The zero value is 0 bytes.
type ByteSize int64

// Byte size units, usable in code as e.g. 64*config.KiB.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1e3
	MB  ByteSize = 1e6
	GB  ByteSize = 1e9
	TB  ByteSize = 1e12
)

// sizeUnits maps each accepted unit suffix to its multiplier. Suffixes are
// case-sensitive, except that "kB" and "KB" are both accepted.
var sizeUnits = map[string]ByteSize{
	"": B, "B": B,
	"kB": KB, "KB": KB, "MB": MB, "GB": GB, "TB": TB,
	"KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB,
}

const sizeUnitHint = "units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"

// Int64 returns s as a number of bytes.
func (s ByteSize) Int64() int64 { return int64(s) }

// String formats s with the largest unit that divides it exactly, preferring
// binary units ("64KiB", "10MB", "1000B"); 0 is "0".
func (s ByteSize) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		v    ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"kB", KB}} {
		if s%u.v == 0 {
			return fmt.Sprintf("%d%s", s/u.v, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalText implements encoding.TextMarshaler, so a ByteSize can be used
// with flag.TextVar.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the rules of
// ParseByteSize.
func (s *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseByteSize parses a size such as "1048576", "512B", "10MB" or "64KiB".
// Only whole numbers are accepted; negative sizes and sizes that overflow
// int64 are rejected.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid size %q: must not be negative", s)
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, ok := sizeUnits[strings.TrimSpace(t[i:])]
	if i == 0 || !ok {
		return 0, fmt.Errorf("invalid size %q (%s)", s, sizeUnitHint)
	}
	var n int64
	for _, c := range t[:i] {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		n = n*10 + d
	}
	if n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(n) * mult, nil
}
