package strict

// ChunkDecoder decodes a chunked request body (RFC 9112 §7.1) by the rules
// a Conn applies to one (see the package doc: chunk-size digits, extension
// grammar and length, trailer fields and their limits, CRLF only). It is
// for a server that reads its own connection: it works in place on the
// caller's buffer, allocates nothing (but the error it reports), and never
// takes a byte past the end of the body, so what follows in the buffer is
// the next request, untouched.
//
// The zero value decodes with Config's default limits; Reset sets others.
type ChunkDecoder struct {
	cfg  Config
	s    chunkState
	init bool // cfg has its defaults
	done bool
	err  error
}

// ChunkError is a chunked body the strict rules refuse: the status a Conn
// answers it with (400, or 431 for a trailer section over the limits) and
// a short fixed reason.
type ChunkError struct {
	Status int
	Reason string
}

func (e *ChunkError) Error() string { return "strict: " + e.Reason }

// Reset readies d for a new body, with cfg's limits (MaxChunkExtBytes,
// and MaxHeaderBytes and MaxHeaderCount for the trailer section; zero
// values are the defaults).
func (d *ChunkDecoder) Reset(cfg Config) {
	*d = ChunkDecoder{cfg: cfg.withDefaults(), init: true}
}

// Decode decodes the start of b, which continues the body where the last
// call left it. It returns how many bytes of b it took (n), the chunk data
// among them (data: a subslice of b that ends at b[n], at most max bytes),
// whether the body ended at b[n], and the violation, a *ChunkError, found
// at b[n].
//
// A call takes framing, then chunk data, and stops: after chunk data, at
// the end of b, at the end of the body, or after the last-chunk line, where
// the trailer section begins (see InTrailer). So n < len(b) with no error
// and not done means call again with b[n:] (and, with max 0 inside a chunk,
// with room for data). After the end or an error, Decode takes nothing and
// gives the same answer.
func (d *ChunkDecoder) Decode(b []byte, max int) (n int, data []byte, done bool, err error) {
	if d.done || d.err != nil {
		return 0, nil, d.done, d.err
	}
	if !d.init {
		d.Reset(d.cfg)
	}
	n, done, f := d.s.step(b, &d.cfg, true)
	if !f.ok() {
		d.err = &ChunkError{Status: f.status, Reason: f.reason}
		return n, nil, false, d.err
	}
	if done {
		d.done = true
		return n, nil, true, nil
	}
	if d.s.st == csData && n < len(b) && max > 0 {
		k := min(len(b)-n, max)
		if uint64(k) > d.s.remain {
			k = int(d.s.remain)
		}
		data = b[n : n+k]
		n += k
		d.Skip(k)
	}
	return n, data, false, nil
}

// Remaining is how many bytes of chunk data come next, before any framing:
// 0 unless Decode stopped inside a chunk. A reader may take up to that
// many bytes from its source itself, straight into their destination, and
// report them with Skip.
func (d *ChunkDecoder) Remaining() int64 {
	if d.s.st != csData || d.err != nil {
		return 0
	}
	return int64(d.s.remain)
}

// Skip records n bytes of chunk data taken past Decode. n must be at most
// Remaining().
func (d *ChunkDecoder) Skip(n int) {
	if n < 0 || int64(n) > d.Remaining() {
		panic("strict: ChunkDecoder.Skip past the chunk")
	}
	d.s.remain -= uint64(n)
	if d.s.remain == 0 {
		d.s.st = csDataCR
	}
}

// InTrailer reports whether the bytes Decode takes next belong to the
// trailer section (its field lines, and the empty line that ends the
// body), for a caller that keeps the trailer fields: the grammar and
// limits are checked, so they are lines of "name:value" ending in CRLF.
func (d *ChunkDecoder) InTrailer() bool {
	return !d.done && d.err == nil && d.s.st >= csTrStart
}
