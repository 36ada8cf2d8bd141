package sketch

import "testing"

func TestAddCountsAndAges(t *testing.T) {
	// One other key fills the windows: with 1024 counters a row, it
	// shares all four of "a"'s with a chance of about one in a million.
	s := New(1024)
	if got := s.Add("a"); got != 1 {
		t.Fatalf("first Add = %d, want 1", got)
	}
	if got := s.Add("a"); got != 2 {
		t.Fatalf("second Add = %d, want 2", got)
	}
	for range 1022 { // completes the window: the counters are halved (2 → 1)
		s.Add("b")
	}
	if got := s.Add("a"); got != 2 {
		t.Fatalf("Add after one halving = %d, want 2 (1 kept, plus this one)", got)
	}
	for range 1023 + 1024 { // two more halvings: 2 → 1 → 0
		s.Add("b")
	}
	if got := s.Add("a"); got != 1 {
		t.Fatalf("Add after two more halvings = %d, want 1 (forgotten)", got)
	}
}

func TestAddAllocatesNothing(t *testing.T) {
	s := New(1024)
	if n := testing.AllocsPerRun(100, func() { s.Add("key") }); n != 0 {
		t.Fatalf("Add allocates %v times", n)
	}
}
