package coding

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Config says which responses a site compresses, into which codings and
// how hard. The zero value compresses nothing.
type Config struct {
	// Enabled turns compression on.
	Enabled bool
	// Types are the media types compressed ("text/html"; "text/*" is every
	// text type), ASCII case-insensitive. Nil means DefaultTypes().
	Types []string
	// MinBytes is the smallest body compressed. Zero means 1 KiB; negative
	// means no minimum.
	MinBytes int64
	// Codings are the codings produced, by name ("br", "zstd", "gzip").
	// Nil means all three.
	Codings []string
	// BrotliLevel (0-11), ZstdLevel (1-22, mapped to the zstd package's
	// four speeds) and GzipLevel (1-9) are the compression levels; zero
	// means 5, 3 and 6.
	BrotliLevel, ZstdLevel, GzipLevel int
}

// DefaultTypes returns the media types compressed by default: text,
// scripts, JSON, XML, SVG, WebAssembly and uncompressed font formats.
// Already compressed formats (images, video, woff2, archives) are absent:
// compressing them again costs CPU and saves nothing.
func DefaultTypes() []string {
	return []string{
		"text/html", "text/css", "text/plain", "text/javascript", "text/xml", "text/markdown", "text/csv",
		"application/javascript", "application/x-javascript", "application/json", "application/ld+json",
		"application/manifest+json", "application/xml", "application/rss+xml", "application/atom+xml",
		"application/wasm", "image/svg+xml", "image/x-icon", "font/ttf", "font/otf",
	}
}

// Compressor compresses response bodies as a Config says. It is safe for
// concurrent use; a nil *Compressor compresses nothing.
type Compressor struct {
	types    []string // lowercased; "text/" for "text/*"
	minBytes int64
	codings  Set
	brLevel  int
	gzLevel  int
	zstd     *zstd.Encoder
	br, gz   sync.Pool // *brotli.Writer, *gzip.Writer
}

// New returns the Compressor cfg describes, or nil when cfg is not
// Enabled.
func New(cfg Config) (*Compressor, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	c := &Compressor{minBytes: cfg.MinBytes, brLevel: cfg.BrotliLevel, gzLevel: cfg.GzipLevel}
	if c.minBytes == 0 {
		c.minBytes = 1 << 10
	}
	if c.brLevel == 0 {
		c.brLevel = 5
	}
	if c.gzLevel == 0 {
		c.gzLevel = 6
	}
	zl := cfg.ZstdLevel
	if zl == 0 {
		zl = 3
	}
	switch {
	case c.brLevel < 0 || c.brLevel > 11:
		return nil, fmt.Errorf("coding: brotli level %d is not in 0-11", c.brLevel)
	case c.gzLevel < 1 || c.gzLevel > 9:
		return nil, fmt.Errorf("coding: gzip level %d is not in 1-9", c.gzLevel)
	case zl < 1 || zl > 22:
		return nil, fmt.Errorf("coding: zstd level %d is not in 1-22", zl)
	}
	types := cfg.Types
	if types == nil {
		types = DefaultTypes()
	}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		major, minor, ok := strings.Cut(t, "/")
		if !ok || major == "" || minor == "" || strings.ContainsAny(t, " ;,") {
			return nil, fmt.Errorf("coding: %q is not a media type (type/subtype or type/*)", t)
		}
		if minor == "*" {
			t = major + "/"
		}
		c.types = append(c.types, t)
	}
	names := cfg.Codings
	if names == nil {
		names = []string{"br", "zstd", "gzip"}
	}
	for _, n := range names {
		cd, ok := Parse(n)
		if !ok || strings.EqualFold(n, "x-gzip") {
			return nil, fmt.Errorf("coding: unknown coding %q (br, zstd or gzip)", n)
		}
		c.codings |= Set(cd)
	}
	if c.codings.Has(Zstd) {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(zl)), zstd.WithEncoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("coding: zstd: %w", err)
		}
		c.zstd = enc
	}
	return c, nil
}

// Codings returns the codings c produces; none for a nil c.
func (c *Compressor) Codings() Set {
	if c == nil {
		return 0
	}
	return c.codings
}

// Applies reports whether a response with header h and a body of size
// bytes is one c compresses: not already encoded, without Cache-Control:
// no-transform (RFC 9110 §7.7), of a listed type, and at least MinBytes.
func (c *Compressor) Applies(h http.Header, size int64) bool {
	if c == nil || c.codings == 0 || size < c.minBytes {
		return false
	}
	if ce := h.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return false
	}
	for _, cc := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(cc, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return false
			}
		}
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return false // the edge sniffs a type for these; leave them alone
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	for _, t := range c.types {
		if mt == t || strings.HasSuffix(t, "/") && strings.HasPrefix(mt, t) {
			return true
		}
	}
	return false
}

// ErrNoGain is returned by Compress when the output would not be at least
// a sixteenth smaller than the input: not worth storing or sending.
var ErrNoGain = errors.New("coding: compression saves too little")

// Compress returns src compressed with cd, in a new slice.
func (c *Compressor) Compress(cd Coding, src []byte) ([]byte, error) {
	var out []byte
	var err error
	switch cd {
	case Zstd:
		out = c.zstd.EncodeAll(src, make([]byte, 0, len(src)/3))
	case Br:
		out, err = c.stream(&c.br, src, func() writer { return brotli.NewWriterLevel(nil, c.brLevel) })
	case Gzip:
		out, err = c.stream(&c.gz, src, func() writer {
			w, _ := gzip.NewWriterLevel(nil, c.gzLevel) // the level was checked by New
			return w
		})
	default:
		return nil, fmt.Errorf("coding: cannot compress with %v", cd)
	}
	if err != nil {
		return nil, fmt.Errorf("coding: %v: %w", cd, err)
	}
	if len(out) > len(src)-len(src)/16 {
		return nil, ErrNoGain
	}
	return out, nil
}

// writer is a pooled stream compressor (brotli's or gzip's Writer).
type writer interface {
	Reset(w io.Writer)
	Write(p []byte) (int, error)
	Close() error
}

func (c *Compressor) stream(pool *sync.Pool, src []byte, fresh func() writer) ([]byte, error) {
	w, _ := pool.Get().(writer)
	if w == nil {
		w = fresh()
	}
	defer pool.Put(w)
	buf := bytes.NewBuffer(make([]byte, 0, len(src)/3))
	w.Reset(buf)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	w.Reset(nil) // drop the reference to buf
	return buf.Bytes(), nil
}
