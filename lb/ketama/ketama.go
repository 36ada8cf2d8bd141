// Package ketama is an immutable consistent-hash ring in the style of
// libketama.
//
// Each member gets 160 × Weight points on a 32-bit circle. The points come
// from MD5 digests of the strings "name-0", "name-1", ...; every 16-byte
// digest gives four points, each read little-endian from 4 bytes, as
// libketama does. A key hashes to the first 4 bytes of MD5(key), read
// little-endian, and belongs to the member owning the first point at or after
// that hash, wrapping around past the largest point.
//
// Deviations from libketama:
//
//   - libketama scales each member's point count by its share of the total
//     weight, so adding a member changes every other member's points. This
//     ring gives each member exactly 160 × Weight points, independent of the
//     other members. Adding a member therefore only moves keys to the new
//     member, and removing one only moves that member's keys.
//   - When two points share a hash, the point of the member whose name sorts
//     first (byte-wise) owns that hash. The order members are passed to New
//     does not matter, so every ring built from the same set of members
//     answers every Lookup the same way.
//
// A Ring is never modified after New returns; rebuild it when membership
// changes and swap it in (for example with atomic.Pointer).
package ketama

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
)

const (
	// PointsPerWeight is the number of ring points per unit of member weight.
	PointsPerWeight = 160

	// MaxWeight is the largest Weight New accepts. It bounds memory: a
	// member of weight MaxWeight owns 1.6 million points.
	MaxWeight = 10000

	pointsPerDigest = md5.Size / 4
)

// Member is one participant in the ring.
type Member struct {
	// Name identifies the member; Lookup returns it. It must be non-empty
	// and unique within a ring.
	Name string
	// Weight scales the member's share of keys. Zero or negative means 1.
	Weight int
}

// Ring maps keys to members. It is immutable and safe for concurrent use.
// The zero Ring has no members.
type Ring struct {
	members []Member // as passed to New, weights normalised
	hashes  []uint32 // sorted point hashes
	owners  []int32  // owners[i] is the index in members of hashes[i]'s owner
}

// New builds a ring over members. It returns an error if a name is empty or
// repeated, or if a weight exceeds MaxWeight. An empty members slice is
// allowed: the ring then maps every key to "".
func New(members []Member) (*Ring, error) {
	r := &Ring{members: make([]Member, len(members))}
	seen := make(map[string]struct{}, len(members))
	total := 0
	for i, m := range members {
		if m.Name == "" {
			return nil, fmt.Errorf("ketama: member %d has an empty name", i)
		}
		if _, dup := seen[m.Name]; dup {
			return nil, fmt.Errorf("ketama: duplicate member name %q", m.Name)
		}
		seen[m.Name] = struct{}{}
		if m.Weight <= 0 {
			m.Weight = 1
		}
		if m.Weight > MaxWeight {
			return nil, fmt.Errorf("ketama: member %q: weight %d exceeds %d", m.Name, m.Weight, MaxWeight)
		}
		r.members[i] = m
		total += m.Weight * PointsPerWeight
	}

	type point struct {
		hash  uint32
		owner int32
	}
	points := make([]point, 0, total)
	buf := make([]byte, 0, 64)
	for i, m := range r.members {
		for d := range m.Weight * PointsPerWeight / pointsPerDigest {
			buf = append(buf[:0], m.Name...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(d), 10)
			sum := md5.Sum(buf)
			for p := range pointsPerDigest {
				h := binary.LittleEndian.Uint32(sum[p*4:])
				points = append(points, point{hash: h, owner: int32(i)})
			}
		}
	}
	slices.SortFunc(points, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(r.members[a.owner].Name, r.members[b.owner].Name)
	})

	r.hashes = make([]uint32, len(points))
	r.owners = make([]int32, len(points))
	for i, p := range points {
		r.hashes[i] = p.hash
		r.owners[i] = p.owner
	}
	return r, nil
}

// hash returns the ring position of key: the first 4 bytes of MD5(key),
// little-endian, as libketama.
// Keys up to 256 bytes are copied to the stack (a plain []byte(key) would
// allocate past 32 bytes, and cache keys are usually longer): the lookup
// runs on every miss.
func hash(key string) uint32 {
	var buf [256]byte
	var sum [md5.Size]byte
	if len(key) <= len(buf) {
		sum = md5.Sum(buf[:copy(buf[:], key)])
	} else {
		sum = md5.Sum([]byte(key))
	}
	return binary.LittleEndian.Uint32(sum[:4])
}

// start returns the index of the point owning key. The ring must have points.
func (r *Ring) start(key string) int {
	// BinarySearch finds the first of several equal hashes, which is the
	// point whose owner name sorts first: the documented tie-break.
	i, _ := slices.BinarySearch(r.hashes, hash(key))
	if i == len(r.hashes) {
		i = 0
	}
	return i
}

// Lookup returns the name of the member owning key, or "" if the ring has no
// members.
func (r *Ring) Lookup(key string) string {
	if r == nil || len(r.hashes) == 0 {
		return ""
	}
	return r.members[r.owners[r.start(key)]].Name
}

// LookupN returns up to n distinct member names, in ring order starting with
// the owner of key. The first name is Lookup(key); the following names are the
// members a caller should fail over to, in order. It returns fewer than n names
// when the ring has fewer members, and nil when n <= 0 or the ring is empty.
// The caller owns the returned slice.
func (r *Ring) LookupN(key string, n int) []string {
	if r == nil || len(r.hashes) == 0 || n <= 0 {
		return nil
	}
	n = min(n, len(r.members))
	out := make([]string, 0, n)
	seen := make([]bool, len(r.members))
	for i, j := r.start(key), 0; j < len(r.hashes) && len(out) < n; i, j = i+1, j+1 {
		if i == len(r.hashes) {
			i = 0
		}
		o := r.owners[i]
		if !seen[o] {
			seen[o] = true
			out = append(out, r.members[o].Name)
		}
	}
	return out
}

// Point returns the position of key on the ring: the hash Lookup starts
// from.
func Point(key string) uint32 { return hash(key) }

// KeyHash is the 64-bit FNV-1a hash of key, independent of the ring's MD5
// placement: the seed JumpPoint derives a key's overflow positions from.
func KeyHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}

// JumpPoint returns the ring position of the attempt-th (1, 2, ...)
// overflow jump of a key whose KeyHash is h: fmix64 (MurmurHash3's
// finalizer) of h stepped by attempt times the 64-bit golden ratio, high 32
// bits. Bounded-load callers (package lb's ketama policy, lb/cluster) send a
// key whose owner is full to the owner of the first such position with
// room: an overloaded member's keys spread over the others rather than onto
// its ring successor, and each key overflows to the same place every time.
func JumpPoint(h uint64, attempt int) uint32 {
	x := h + uint64(attempt)*0x9e3779b97f4a7c15
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x >> 32)
}

// AppendOrder appends to dst the indexes, in the members passed to New, of up
// to n distinct members in ring order from the first point at or after pos
// (wrapping around), and returns the extended slice. With pos = Point(key)
// the members appended are LookupN(key, n), in that order; another pos
// starts the walk elsewhere on the ring. It appends nothing when n <= 0 or
// the ring is empty, and allocates only to grow dst (and, past 256 members,
// for bookkeeping), so a caller walking the ring on every request can keep
// dst on its stack.
func (r *Ring) AppendOrder(dst []int, pos uint32, n int) []int {
	if r == nil || len(r.hashes) == 0 || n <= 0 {
		return dst
	}
	n = min(n, len(r.members))
	var seenBuf [256]bool
	seen := seenBuf[:0]
	if len(r.members) <= len(seenBuf) {
		seen = seenBuf[:len(r.members)]
	} else {
		seen = make([]bool, len(r.members))
	}
	i, _ := slices.BinarySearch(r.hashes, pos)
	for found, j := 0, 0; j < len(r.hashes) && found < n; i, j = i+1, j+1 {
		if i == len(r.hashes) {
			i = 0
		}
		o := r.owners[i]
		if !seen[o] {
			seen[o] = true
			dst = append(dst, int(o))
			found++
		}
	}
	return dst
}

// Shares returns, for each member in the order given to New, the fraction
// of the 32-bit hash space it owns: the arcs ending at its points (a point
// owns the hashes after the previous point up to its own). The shares sum
// to 1; an empty ring returns nil. The caller owns the returned slice.
func (r *Ring) Shares() []float64 {
	if r == nil || len(r.hashes) == 0 {
		return nil
	}
	arcs := make([]uint64, len(r.members))
	prev := uint64(r.hashes[len(r.hashes)-1]) // the first point's arc wraps past the largest
	for i, h := range r.hashes {
		arc := (uint64(h) - prev) & (1<<32 - 1)
		arcs[r.owners[i]] += arc
		prev = uint64(h)
	}
	out := make([]float64, len(arcs))
	for i, a := range arcs {
		out[i] = float64(a) / (1 << 32)
	}
	return out
}

// Members returns the ring's members in the order given to New, with
// weights of zero or less reported as 1. The caller owns the returned slice.
func (r *Ring) Members() []Member {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}
