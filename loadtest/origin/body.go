package origin

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// ErrMismatch is returned by Verifier when a body differs from the
// deterministic body of its object.
var ErrMismatch = errors.New("origin: body mismatch")

// seedOf maps an object id to the seed of its byte stream.
func seedOf(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// word returns the 8 bytes of block b of the stream seeded by seed
// (splitmix64 of seed + b·φ).
func word(seed, b uint64) uint64 {
	x := seed + (b+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// fill writes into dst the bytes of the stream seeded by seed starting at
// offset off.
func fill(dst []byte, seed uint64, off int64) {
	for len(dst) > 0 {
		b, in := uint64(off)/8, int(off%8)
		w := word(seed, b)
		n := 0
		for i := in; i < 8 && n < len(dst); i++ {
			dst[n] = byte(w >> (8 * i))
			n++
		}
		dst, off = dst[n:], off+int64(n)
	}
}

// Expected returns the body the origin serves for object id at the given
// size. Byte i depends only on id and i, so a prefix of a longer object's body
// is the shorter object's body.
func Expected(id string, size int) []byte {
	b := make([]byte, size)
	fill(b, seedOf(id), 0)
	return b
}

// body is an io.ReadSeeker over an object's deterministic bytes; it lets
// http.ServeContent handle ranges and conditional requests.
type body struct {
	seed      uint64
	off, size int64
	text      bool // fillText's compressible text, not fill's bytes
}

func (b *body) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.size-b.off)]
	if b.text {
		fillText(p, b.seed, b.off)
	} else {
		fill(p, b.seed, b.off)
	}
	b.off += int64(len(p))
	return len(p), nil
}

func (b *body) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, errors.New("origin: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("origin: negative seek")
	}
	b.off = offset
	return offset, nil
}

// Verifier is an io.Writer that checks what is written to it against the
// deterministic body of one object, without holding that body. The zero
// Verifier is not usable; call NewVerifier.
type Verifier struct {
	seed uint64
	n    int64
	buf  [4096]byte
	err  error
}

// NewVerifier returns a Verifier for object id, starting at offset 0.
func NewVerifier(id string) *Verifier { return &Verifier{seed: seedOf(id)} }

// Write compares p with the next len(p) expected bytes. At the first
// difference it returns an error wrapping ErrMismatch, and keeps returning it.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	done := 0
	for len(p) > 0 {
		chunk := v.buf[:min(len(p), len(v.buf))]
		fill(chunk, v.seed, v.n)
		for i := range chunk {
			if chunk[i] != p[i] {
				v.err = fmt.Errorf("%w at offset %d", ErrMismatch, v.n+int64(i))
				return done + i, v.err
			}
		}
		v.n += int64(len(chunk))
		done += len(chunk)
		p = p[len(chunk):]
	}
	return done, nil
}

// N returns how many bytes matched so far.
func (v *Verifier) N() int64 { return v.n }

// textWords are the words of text bodies, each padded to a slot of 8 bytes.
var textWords = func() [64]string {
	ws := [64]string{}
	base := []string{"the", "cache", "edge", "origin", "shard", "purge", "fresh", "stale",
		"object", "header", "body", "vary", "range", "tier", "disk", "memory"}
	for i := range ws {
		w := base[i%len(base)]
		if i >= len(base) {
			w = w[:min(len(w), 6)] + string(rune('a'+i/len(base)))
		}
		for len(w) < 7 {
			w += " "
		}
		ws[i] = w[:7]
	}
	return ws
}()

// fillText writes into dst the bytes of the text stream seeded by seed at
// offset off: 8-byte word slots (a word of textWords and a space, a newline
// ending every eighth), each word picked by the stream's bits. It
// compresses about as well as prose or markup (a handful of bits per
// slot), and like fill, byte i depends only on seed and i.
func fillText(dst []byte, seed uint64, off int64) {
	for i := range dst {
		pos := off + int64(i)
		slot, in := uint64(pos)/8, int(pos%8)
		switch {
		case in < 7:
			w := word(seed, slot/8) >> (8 * (slot % 8)) & 63
			dst[i] = textWords[w][in]
		case slot%8 == 7:
			dst[i] = '\n'
		default:
			dst[i] = ' '
		}
	}
}
