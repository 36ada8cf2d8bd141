package sketch

import (
	"strconv"
	"testing"
)

func TestAddCountsAndAges(t *testing.T) {
	s := New(64)
	if got := s.Add("a"); got != 1 {
		t.Fatalf("first Add = %d, want 1", got)
	}
	if got := s.Add("a"); got != 2 {
		t.Fatalf("second Add = %d, want 2", got)
	}
	// 62 other keys complete the window: the counters are halved (2 → 1).
	for i := range 62 {
		s.Add("k" + strconv.Itoa(i))
	}
	if got := s.Add("a"); got != 2 {
		t.Fatalf("Add after one halving = %d, want 2 (1 kept, plus this one)", got)
	}
	for range 3 {
		for i := range 64 {
			s.Add("x" + strconv.Itoa(i))
		}
	}
	if got := s.Add("a"); got != 1 {
		t.Fatalf("Add after three more halvings = %d, want 1 (forgotten)", got)
	}
}

func TestAddAllocatesNothing(t *testing.T) {
	s := New(1024)
	if n := testing.AllocsPerRun(100, func() { s.Add("key") }); n != 0 {
		t.Fatalf("Add allocates %v times", n)
	}
}
