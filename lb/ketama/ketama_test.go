package ketama_test

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/edged-proxy/edged/lb/ketama"
)

const numKeys = 100_000

func mustNew(t testing.TB, members []ketama.Member) *ketama.Ring {
	t.Helper()
	r, err := ketama.New(members)
	if err != nil {
		t.Fatalf("New(%v): %v", members, err)
	}
	return r
}

func named(names ...string) []ketama.Member {
	ms := make([]ketama.Member, len(names))
	for i, n := range names {
		ms[i] = ketama.Member{Name: n}
	}
	return ms
}

func hostNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("10.0.0.%d:8080", i+1)
	}
	return names
}

func key(i int) string { return "http://example.com/object/" + strconv.Itoa(i) }

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		members []ketama.Member
	}{
		{"empty name", []ketama.Member{{Name: "a"}, {Name: ""}}},
		{"duplicate name", []ketama.Member{{Name: "a"}, {Name: "b"}, {Name: "a", Weight: 3}}},
		{"weight too large", []ketama.Member{{Name: "a", Weight: ketama.MaxWeight + 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := ketama.New(tt.members); err == nil {
				t.Fatalf("New(%v) = %v, nil; want an error", tt.members, r)
			}
		})
	}
}

func TestEmptyRing(t *testing.T) {
	for _, members := range [][]ketama.Member{nil, {}} {
		r := mustNew(t, members)
		if got := r.Lookup("k"); got != "" {
			t.Errorf("Lookup on empty ring = %q, want \"\"", got)
		}
		if got := r.LookupN("k", 3); got != nil {
			t.Errorf("LookupN on empty ring = %q, want nil", got)
		}
		if got := r.Members(); len(got) != 0 {
			t.Errorf("Members on empty ring = %v, want none", got)
		}
	}
	var zero ketama.Ring
	if got := zero.Lookup("k"); got != "" {
		t.Errorf("Lookup on zero Ring = %q, want \"\"", got)
	}
}

func TestMembers(t *testing.T) {
	in := []ketama.Member{{Name: "b", Weight: 0}, {Name: "a", Weight: -2}, {Name: "c", Weight: 5}}
	r := mustNew(t, in)
	got := r.Members()
	want := []ketama.Member{{Name: "b", Weight: 1}, {Name: "a", Weight: 1}, {Name: "c", Weight: 5}}
	if !slices.Equal(got, want) {
		t.Fatalf("Members() = %v, want %v", got, want)
	}
	got[0].Name = "mutated"
	if r.Members()[0].Name != "b" {
		t.Fatal("Members() returned the ring's own slice")
	}
}

// TestDeterminism checks that rings built from the same members, in any
// order, agree on every key, and that a single-member ring owns everything.
func TestDeterminism(t *testing.T) {
	names := hostNames(7)
	r1 := mustNew(t, named(names...))
	rev := slices.Clone(names)
	slices.Reverse(rev)
	r2 := mustNew(t, named(rev...))
	for i := range numKeys / 10 {
		k := key(i)
		a, b := r1.Lookup(k), r2.Lookup(k)
		if a != b {
			t.Fatalf("Lookup(%q): %q from one ring, %q from the same members reordered", k, a, b)
		}
		if again := r1.Lookup(k); again != a {
			t.Fatalf("Lookup(%q) = %q then %q", k, a, again)
		}
	}

	solo := mustNew(t, named("only"))
	for i := range 1000 {
		if got := solo.Lookup(key(i)); got != "only" {
			t.Fatalf("single-member ring: Lookup(%q) = %q", key(i), got)
		}
	}
}

// refPoint and refLookup are a naive model of the documented placement
// (libketama points, first-4-bytes little-endian key hash, name tie-break),
// written independently of the ring's sorted search.
type refPoint struct {
	hash uint32
	name string
}

func refPoints(members []ketama.Member) []refPoint {
	var pts []refPoint
	for _, m := range members {
		w := max(m.Weight, 1)
		for d := range w * 40 {
			sum := md5.Sum([]byte(m.Name + "-" + strconv.Itoa(d)))
			for p := range 4 {
				pts = append(pts, refPoint{binary.LittleEndian.Uint32(sum[p*4:]), m.Name})
			}
		}
	}
	return pts
}

func refHash(k string) uint32 {
	sum := md5.Sum([]byte(k))
	return binary.LittleEndian.Uint32(sum[:4])
}

func refLookup(pts []refPoint, k string) string {
	h := refHash(k)
	best, bestDist := "", uint64(math.MaxUint64)
	for _, p := range pts {
		d := uint64(p.hash - h) // clockwise distance, wrapping
		if d < bestDist || (d == bestDist && p.name < best) {
			best, bestDist = p.name, d
		}
	}
	return best
}

func TestMatchesReferenceModel(t *testing.T) {
	members := []ketama.Member{{Name: "a", Weight: 1}, {Name: "b", Weight: 2}, {Name: "c", Weight: 1}}
	r := mustNew(t, members)
	pts := refPoints(members)
	for i := range 2000 {
		k := key(i)
		if got, want := r.Lookup(k), refLookup(pts, k); got != want {
			t.Fatalf("Lookup(%q) = %q, reference model says %q", k, got, want)
		}
	}
}

// TestCollisionTieBreak finds two members with a point on the same hash and
// checks that the member whose name sorts first owns it, whatever the order
// passed to New.
func TestCollisionTieBreak(t *testing.T) {
	// Birthday search over the first digest of many names: about 4 × 2^17
	// points in a 2^32 space gives a handful of collisions.
	firstAt := make(map[uint32]string)
	var x, y string
	var h uint32
	for i := 0; i < 1<<17 && x == ""; i++ {
		name := "m" + strconv.Itoa(i)
		sum := md5.Sum([]byte(name + "-0"))
		for p := range 4 {
			v := binary.LittleEndian.Uint32(sum[p*4:])
			if other, ok := firstAt[v]; ok && other != name {
				x, y, h = other, name, v
				break
			}
			firstAt[v] = name
		}
	}
	if x == "" {
		t.Skip("no point collision found among the searched names")
	}
	lo, hi := min(x, y), max(x, y)

	// Find the point just before h to locate keys owned by the collided
	// point.
	members := named(x, y)
	var prev uint32
	for _, p := range refPoints(members) {
		if p.hash < h && p.hash > prev {
			prev = p.hash
		}
	}
	var k string
	for i := 0; i < 1<<22 && k == ""; i++ {
		c := "probe-" + strconv.Itoa(i)
		if v := refHash(c); v > prev && v <= h {
			k = c
		}
	}
	if k == "" {
		t.Skip("no key found in the collided arc")
	}
	for _, order := range [][]string{{lo, hi}, {hi, lo}} {
		r := mustNew(t, named(order...))
		if got := r.Lookup(k); got != lo {
			t.Errorf("members %v collide at %#x: Lookup(%q) = %q, want %q (name sorting first)", order, h, k, got, lo)
		}
		if got := r.LookupN(k, 2); !slices.Equal(got, []string{lo, hi}) {
			t.Errorf("members %v: LookupN(%q, 2) = %q, want [%s %s]", order, k, got, lo, hi)
		}
	}
}

func TestDistributionFollowsWeights(t *testing.T) {
	members := []ketama.Member{
		{Name: "a", Weight: 1},
		{Name: "b", Weight: 1},
		{Name: "c", Weight: 2},
		{Name: "d", Weight: 4},
		{Name: "e", Weight: 0}, // treated as 1
	}
	r := mustNew(t, members)
	counts := make(map[string]int)
	for i := range numKeys {
		counts[r.Lookup(key(i))]++
	}
	total := 0
	for _, m := range r.Members() {
		total += m.Weight
	}
	for _, m := range r.Members() {
		want := float64(numKeys) * float64(m.Weight) / float64(total)
		got := float64(counts[m.Name])
		if math.Abs(got-want) > 0.15*want {
			t.Errorf("member %s (weight %d): %v keys, want %.0f ±15%%", m.Name, m.Weight, got, want)
		}
	}
}

func TestAddMemberMovesOnlyToNewMember(t *testing.T) {
	for _, n := range []int{4, 10} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			names := hostNames(n + 1)
			before := mustNew(t, named(names[:n]...))
			after := mustNew(t, named(names...))
			added := names[n]
			moved := 0
			for i := range numKeys {
				k := key(i)
				a, b := before.Lookup(k), after.Lookup(k)
				if a == b {
					continue
				}
				moved++
				if b != added {
					t.Fatalf("key %q moved from %q to %q, not to the new member %q", k, a, b, added)
				}
			}
			limit := float64(numKeys) / float64(n+1) * 1.25
			t.Logf("moved %d of %d keys (ideal %.0f, limit %.0f)", moved, numKeys, float64(numKeys)/float64(n+1), limit)
			if float64(moved) > limit {
				t.Errorf("adding 1 member to %d moved %d keys, want <= %.0f", n, moved, limit)
			}
			if moved == 0 {
				t.Error("adding a member moved no keys")
			}
		})
	}
}

func TestRemoveMemberMovesOnlyItsKeys(t *testing.T) {
	names := hostNames(6)
	full := mustNew(t, named(names...))
	removed := names[2]
	rest := slices.Delete(slices.Clone(names), 2, 3)
	smaller := mustNew(t, named(rest...))
	for i := range numKeys {
		k := key(i)
		a, b := full.Lookup(k), smaller.Lookup(k)
		if a != removed && a != b {
			t.Fatalf("key %q owned by %q moved to %q when %q was removed", k, a, b, removed)
		}
		if a == removed {
			// The key goes to the next distinct member in ring order,
			// which is what LookupN offers as the first failover.
			if want := full.LookupN(k, 2)[1]; b != want {
				t.Fatalf("key %q of removed %q went to %q, LookupN said %q", k, removed, b, want)
			}
		}
	}
}

func TestLookupN(t *testing.T) {
	names := hostNames(5)
	r := mustNew(t, []ketama.Member{
		{Name: names[0], Weight: 1}, {Name: names[1], Weight: 3}, {Name: names[2]},
		{Name: names[3], Weight: 2}, {Name: names[4]},
	})
	tests := []struct {
		n, want int
	}{
		{-1, 0}, {0, 0}, {1, 1}, {2, 2}, {5, 5}, {9, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d", tt.n), func(t *testing.T) {
			for i := range 2000 {
				k := key(i)
				got := r.LookupN(k, tt.n)
				if len(got) != tt.want {
					t.Fatalf("LookupN(%q, %d) returned %d names %q, want %d", k, tt.n, len(got), got, tt.want)
				}
				if tt.want == 0 {
					continue
				}
				if got[0] != r.Lookup(k) {
					t.Fatalf("LookupN(%q, %d)[0] = %q, Lookup = %q", k, tt.n, got[0], r.Lookup(k))
				}
				seen := make(map[string]bool)
				for _, name := range got {
					if seen[name] {
						t.Fatalf("LookupN(%q, %d) = %q repeats %q", k, tt.n, got, name)
					}
					seen[name] = true
				}
				// A shorter answer is a prefix of a longer one.
				if full := r.LookupN(k, 5); !slices.Equal(full[:len(got)], got) {
					t.Fatalf("LookupN(%q, %d) = %q is not a prefix of LookupN(%q, 5) = %q", k, tt.n, got, k, full)
				}
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			r := mustNew(b, named(hostNames(n)...))
			keys := make([]string, 1024)
			for i := range keys {
				keys[i] = key(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Lookup(keys[i%len(keys)])
				i++
			}
		})
	}
}

func BenchmarkLookupN(b *testing.B) {
	r := mustNew(b, named(hostNames(10)...))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.LookupN(key(i%1024), 3)
		i++
	}
}

func BenchmarkNew(b *testing.B) {
	members := named(hostNames(10)...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ketama.New(members); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendOrder(t *testing.T) {
	names := hostNames(5)
	members := []ketama.Member{
		{Name: names[0], Weight: 1}, {Name: names[1], Weight: 3}, {Name: names[2]},
		{Name: names[3], Weight: 2}, {Name: names[4]},
	}
	r := mustNew(t, members)
	for i := range 2000 {
		k := key(i)
		for _, n := range []int{0, 1, 3, 5, 9} {
			got := r.AppendOrder([]int{-1}, ketama.Point(k), n)
			if got[0] != -1 {
				t.Fatalf("AppendOrder overwrote dst[0]: %v", got)
			}
			var gotNames []string
			for _, m := range got[1:] {
				gotNames = append(gotNames, members[m].Name)
			}
			if want := r.LookupN(k, n); !slices.Equal(gotNames, want) {
				t.Fatalf("AppendOrder(Point(%q), %d) = %q, LookupN = %q", k, n, gotNames, want)
			}
		}
	}
	// Another position starts the walk at the owner of that position.
	for _, pos := range []uint32{0, 1 << 31, math.MaxUint32} {
		got := r.AppendOrder(nil, pos, 1)
		if len(got) != 1 {
			t.Fatalf("AppendOrder(%d, 1) = %v, want one member", pos, got)
		}
	}
	if got := mustNew(t, nil).AppendOrder(nil, 7, 3); len(got) != 0 {
		t.Errorf("empty ring: AppendOrder = %v, want nothing", got)
	}
}

func BenchmarkAppendOrder(b *testing.B) {
	r := mustNew(b, named(hostNames(10)...))
	b.ReportAllocs()
	var buf [16]int
	i := 0
	for b.Loop() {
		r.AppendOrder(buf[:0], ketama.Point(key(i%1024)), 10)
		i++
	}
}

// TestJumpPoint pins the overflow jumps: the same key and attempt always give
// the same position, and successive attempts spread over the ring.
func TestJumpPoint(t *testing.T) {
	h := ketama.KeyHash("example.com/a")
	if h != ketama.KeyHash("example.com/a") || h == ketama.KeyHash("example.com/b") {
		t.Fatal("KeyHash is not a function of the key alone")
	}
	seen := map[uint32]bool{}
	for attempt := 1; attempt <= 8; attempt++ {
		p := ketama.JumpPoint(h, attempt)
		if p != ketama.JumpPoint(h, attempt) {
			t.Fatalf("attempt %d: JumpPoint not deterministic", attempt)
		}
		seen[p] = true
	}
	if len(seen) != 8 {
		t.Errorf("8 attempts gave %d distinct positions, want 8", len(seen))
	}
}

// TestShares checks the hash-space shares against sampled lookups: they sum
// to 1, one member owns everything, and each share is near the fraction of
// keys the member owns.
func TestShares(t *testing.T) {
	one, _ := ketama.New([]ketama.Member{{Name: "a"}})
	if got := one.Shares(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("one member: Shares() = %v, want [1]", got)
	}
	members := []ketama.Member{{Name: "a"}, {Name: "b", Weight: 2}, {Name: "c"}}
	r, err := ketama.New(members)
	if err != nil {
		t.Fatal(err)
	}
	shares := r.Shares()
	sum := 0.0
	for _, s := range shares {
		sum += s
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v, want 1", sum)
	}
	const keys = 40000
	counts := map[string]int{}
	for i := range keys {
		counts[r.Lookup(strconv.Itoa(i))]++
	}
	for i, m := range members {
		if got := float64(counts[m.Name]) / keys; math.Abs(got-shares[i]) > 0.02 {
			t.Errorf("%s: share %.3f, sampled %.3f", m.Name, shares[i], got)
		}
	}
}
