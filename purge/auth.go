package purge

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"unicode"
)

type tokenEntry struct {
	sum   [sha256.Size]byte
	name  string
	sites []string // nil: every site
}

// TokenError is a token New refuses: Tokens[Index], and why.
type TokenError struct {
	Index int
	Name  string
	Msg   string
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("purge: Tokens[%d] (%s): %s", e.Index, e.Name, e.Msg)
}

// CheckTokens reports the first token New would refuse, as a *TokenError,
// or nil: for a configuration check that must catch what starting would.
func CheckTokens(ts []Token) error {
	_, err := compileTokens(ts)
	return err
}

func compileTokens(ts []Token) ([]tokenEntry, error) {
	out := make([]tokenEntry, 0, len(ts))
	seen := map[[sha256.Size]byte]bool{}
	for i, t := range ts {
		if t.Value == "" {
			return nil, &TokenError{i, t.Name, "empty value"}
		}
		if strings.IndexFunc(t.Value, ctlOrSpace) >= 0 {
			return nil, &TokenError{i, t.Name, "value contains whitespace or control characters"}
		}
		e := tokenEntry{sum: sha256.Sum256([]byte(t.Value)), name: t.Name}
		if seen[e.sum] {
			return nil, &TokenError{i, t.Name, "same value as an earlier token"}
		}
		seen[e.sum] = true
		if e.name == "" {
			e.name = fmt.Sprintf("token-%d", i)
		}
		for _, s := range t.Sites {
			if s == "" {
				return nil, &TokenError{i, e.name, "empty site name"}
			}
		}
		if len(t.Sites) > 0 {
			e.sites = slices.Clone(t.Sites)
		}
		out = append(out, e)
	}
	return out, nil
}

func ctlOrSpace(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// bearer returns the token of an "Authorization: Bearer T" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// matchToken compares the presented token against every configured one in
// constant time: SHA-256 first (so lengths leak nothing), then
// subtle.ConstantTimeCompare against all of them, with no early exit.
func (p *Purger) matchToken(presented string) *tokenEntry {
	sum := sha256.Sum256([]byte(presented))
	idx := -1
	for i := range p.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], p.tokens[i].sum[:])
		idx = subtle.ConstantTimeSelect(eq, i, idx)
	}
	if idx < 0 {
		return nil
	}
	return &p.tokens[idx]
}

// authorize checks a valid token's site limits against sel. It returns ""
// when allowed, else the reason for a 403.
func (p *Purger) authorize(t *tokenEntry, sel Selector) string {
	if t.sites == nil {
		return ""
	}
	if len(sel.Tags) > 0 {
		return fmt.Sprintf("token %q is limited to sites %v and may not purge by tag (a tag cannot be mapped to a site); use a token valid for all sites", t.name, t.sites)
	}
	ps, err := sel.Parse()
	if err != nil { // not reached: callers validate sel first
		return err.Error()
	}
	for _, h := range ps.HostsNamed() {
		site := p.siteOf(h)
		if site == "" || !slices.Contains(t.sites, site) {
			if site == "" {
				site = "no site"
			}
			return fmt.Sprintf("token %q is limited to sites %v; host %q belongs to %s", t.name, t.sites, h, site)
		}
	}
	return ""
}

func (p *Purger) clientAllowed(remoteAddr string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap().WithZone("")
	for _, c := range p.cidrs {
		if c.Contains(a) {
			return a, true
		}
	}
	return a, false
}
