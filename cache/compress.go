package cache

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/edged-proxy/edged/cache/coding"
)

// Compressed variants. A storable 200 response that Request.Compress
// applies to is compressed once, when it is filled, into each coding the
// compressor produces; each result is an Entry of its own (full header,
// body, memo), stored in every tier under codedKey of the identity entry's
// key, and the identity entry records which exist (Entry.Codings). A
// lookup finds the identity entry as before; when it has codings the
// request's Accept-Encoding picks one (coding.Negotiate) and the
// compressed entry is served instead, if it is still stored and of the
// same generation (the same response time: filled or refreshed with the
// identity one). Otherwise the identity entry is served: always a correct
// answer. Freshness, revalidation, purges and invalidation work on the
// identity entry; compressed entries share its primary key and tags, so
// every purge reaches them too.

// codedKey is the key the coding cd of the entry stored under key is
// stored under: key, NUL, 0x02 and the coding's name. No variant key
// (NUL then a base-36 marker id) nor marker key (a trailing NUL) has this
// form, and a purge of the URL matches it by its NUL-led suffix.
func codedKey(key string, cd coding.Coding) string { return key + "\x00\x02" + cd.String() }

// isCodedKey reports whether k is a compressed variant's key: a purge
// counts the object, not its variants.
func isCodedKey(k string) bool { return strings.Contains(k, "\x00\x02") }

// codedKeys are the keys of an identity entry's compressed variants, by
// coding (br, zstd, gzip), made once per entry (withCodedKeys) so that a
// compressed hit builds no key: it allocates no more than an identity hit.
type codedKeys [3]string

// withCodedKeys gives e, which has compressed variants, their keys.
func (e *Entry) withCodedKeys() {
	if e.Codings == 0 {
		return
	}
	e.altKeys = &codedKeys{codedKey(e.Key, coding.Br), codedKey(e.Key, coding.Zstd), codedKey(e.Key, coding.Gzip)}
}

// loadCoded looks up the entry of e in coding cd.
func (c *Cache) loadCoded(e *Entry, cd coding.Coding) (stored, bool) {
	var key string
	switch {
	case e.altKeys == nil:
		key = codedKey(e.Key, cd)
	case cd == coding.Br:
		key = e.altKeys[0]
	case cd == coding.Zstd:
		key = e.altKeys[1]
	default:
		key = e.altKeys[2]
	}
	return c.load(key, e.Primary)
}

// compressFilled compresses the identity entry e (body in memory) for r's
// site, when its compressor applies, and returns the compressed entries;
// it records their codings in e and adds Accept-Encoding to e's Vary.
func (c *Cache) compressFilled(r *Request, e *Entry) []*Entry {
	z := r.Compress
	if e.Status != http.StatusOK || !z.Applies(e.Header, int64(len(e.Body))) {
		return nil
	}
	var alts []*Entry
	z.Codings().Each(func(cd coding.Coding) {
		start := c.now()
		body, err := z.Compress(cd, e.Body)
		c.m.compressSeconds.Add(c.now().Sub(start).Seconds())
		if err != nil {
			c.m.compressed.WithLabelValues(cd.String(), "no_gain").Inc()
			return
		}
		c.m.compressed.WithLabelValues(cd.String(), "stored").Inc()
		e.Codings |= coding.Set(cd)
		alts = append(alts, e.coded(cd, body, int64(len(body))))
	})
	if len(alts) > 0 {
		e.withCodedKeys()
		addVary(e.Header, "Accept-Encoding")
		for _, a := range alts {
			addVary(a.Header, "Accept-Encoding")
		}
	}
	return alts
}

// coded returns the entry of e's body in coding cd: body (nil when it is
// not in memory) of size bytes, e's metadata, and e's header with the
// content coding's fields.
func (e *Entry) coded(cd coding.Coding, body []byte, size int64) *Entry {
	a := *e
	a.Key = codedKey(e.Key, cd)
	a.Body = body
	a.Codings, a.altKeys = 0, nil
	a.Memo = new(Memo)
	a.Header = codedHeader(e.Header, cd, size)
	return &a
}

// representationFields describe the identity bytes and are wrong for a
// compressed body: they are not sent with one.
var representationFields = [...]string{"Content-Md5", "Digest", "Content-Digest", "Repr-Digest"}

// codedHeader is the header of a body in coding cd of size bytes whose
// identity form has header h: Content-Encoding and Content-Length set,
// the ETag suffixed with the coding ("abc" becomes "abc-br", weakness
// kept) so that no validator matches across codings, and the fields
// that describe the identity bytes removed.
func codedHeader(h http.Header, cd coding.Coding, size int64) http.Header {
	hd := h.Clone()
	for _, f := range representationFields {
		delete(hd, f)
	}
	hd["Content-Encoding"] = []string{cd.String()}
	hd["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	if tag := first(hd, "Etag"); tag != "" {
		if strings.HasSuffix(tag, `"`) && len(tag) >= 2 {
			hd["Etag"] = []string{tag[:len(tag)-1] + "-" + cd.String() + `"`}
		} else {
			delete(hd, "Etag") // not an entity-tag: nothing to keep apart
		}
	}
	return hd
}

// addVary adds name to h's Vary unless it is listed already.
func addVary(h http.Header, name string) {
	for _, v := range h["Vary"] {
		for n := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return
			}
		}
	}
	h["Vary"] = append(h["Vary"][:len(h["Vary"]):len(h["Vary"])], name)
}

// first is h[key][0] for a canonical key, or "".
func first(h http.Header, key string) string {
	if vv := h[key]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// pickCoded returns what answers a request with Accept-Encoding ae from
// the identity entry st: its compressed entry in the coding negotiated,
// when one is stored for the same response, else st itself. It closes
// whichever it does not return.
func (c *Cache) pickCoded(st stored, ae string) stored {
	e := st.e
	if e.Codings == 0 {
		return st
	}
	cd := coding.Negotiate(ae, e.Codings)
	if cd == coding.Identity {
		return st
	}
	alt, ok := c.loadCoded(e, cd)
	if !ok {
		return st
	}
	if !sameResponse(e, alt.e) {
		alt.close()
		return st
	}
	st.close()
	return alt
}

// sameResponse reports whether the compressed entry alt was made from the
// identity entry e as it is now: filled or last refreshed together.
func sameResponse(e, alt *Entry) bool {
	return alt.Status == e.Status && alt.Timing.ResponseTime.Equal(e.Timing.ResponseTime) && !alt.Marker
}

// acceptEncoding is a request's Accept-Encoding, its lines joined.
func acceptEncoding(h http.Header) string {
	vv := h["Accept-Encoding"]
	switch len(vv) {
	case 0:
		return ""
	case 1:
		return vv[0]
	}
	return strings.Join(vv, ",")
}

// refreshCoded stores, for the refreshed identity entry e made from old
// (a 304 or a matching HEAD answer), the refreshed copies of old's
// compressed entries that are still stored: their bodies unchanged, their
// header and freshness e's. One not found is dropped from e's codings.
func (c *Cache) refreshCoded(old, e *Entry, start uint64) {
	if old.Codings == 0 {
		return
	}
	addVary(e.Header, "Accept-Encoding") // the 304 may have replaced Vary
	e.Codings = 0
	old.Codings.Each(func(cd coding.Coding) {
		alt, ok := c.load(codedKey(old.Key, cd), old.Primary)
		if !ok {
			return
		}
		defer alt.close()
		if !sameResponse(old, alt.e) {
			return
		}
		size := int64(len(alt.e.Body))
		if alt.obj != nil {
			size = alt.obj.Size()
		}
		a := e.coded(cd, alt.e.Body, size)
		e.Codings |= coding.Set(cd)
		c.putAll(a, putRefresh, start)
	})
	e.withCodedKeys()
}
