package storage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// Hottest lists the most recently used objects first, across a restart
// (the access times Close flushes), skipping large ones and stopping at
// the byte budget; Peek reads without changing the order.
func TestHottest(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := storage.Options{Dir: dir, Fsync: storage.FsyncNever, Now: clk.Now}
	s, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d", "big"} {
		n := 100
		if k == "big" {
			n = 10_000
		}
		put(t, s, k, body(n, 1), "t")
		clk.Advance(time.Second)
	}
	for _, k := range []string{"c", "a", "big"} { // c then a then big are the most recent
		clk.Advance(time.Second)
		if _, err := get(t, s, k); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitRecovery()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, opts)
	for _, tc := range []struct {
		budget, maxObject int64
		limit             int
		want              []string
	}{
		{1 << 20, 1000, 10, []string{"a", "c", "d", "b"}},
		{1 << 20, 1 << 20, 10, []string{"big", "a", "c", "d", "b"}},
		{250, 1000, 10, []string{"a", "c"}}, // the third would pass the budget
		{1 << 20, 1000, 1, []string{"a"}},
		{1 << 20, 1000, 0, nil},
	} {
		if got := s.Hottest(tc.budget, tc.maxObject, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("Hottest(%d, %d, %d) = %q, want %q", tc.budget, tc.maxObject, tc.limit, got, tc.want)
		}
	}
	clk.Advance(time.Second)
	o, err := s.Peek("b")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if got := s.Hottest(1<<20, 1000, 1); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after Peek(b): Hottest = %q, want [a]: a peek is not an access", got)
	}
	if _, err := get(t, s, "b"); err != nil {
		t.Fatal(err)
	}
	if got := s.Hottest(1<<20, 1000, 1); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after Get(b): Hottest = %q, want [b]", got)
	}
}
