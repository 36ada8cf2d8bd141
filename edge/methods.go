package edge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// DefaultMethods returns the request methods a site forwards when it
// names none (Site.Methods): the registered methods edged knows, less
// CONNECT (never forwarded) and TRACE (it echoes the request, cookies
// included, to whoever can make a client send it). The slice is the
// caller's.
func DefaultMethods() []string { return append([]string(nil), defaultMethods[:]...) }

var defaultMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodOptions, http.MethodPatch,
}

// defaultAllow is the Allow field of a site with the default methods.
var defaultAllow = strings.Join(defaultMethods[:], ", ")

// knownMethod reports whether m is a method edged knows (RFC 9110 §9,
// RFC 5789, and the PURGE it answers itself): a site that does not allow
// one answers 405, any other method 501 (RFC 9110 §15.6.2). Methods are
// case-sensitive (RFC 9110 §9.1): "get" is not GET but an unknown method.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch, "PURGE":
		return true
	}
	return false
}

// methodSet is the methods a site forwards.
type methodSet struct {
	list  []string // nil: the default methods
	allow string   // the Allow field of a 405
}

func newMethodSet(list []string) methodSet {
	if list == nil {
		return methodSet{allow: defaultAllow}
	}
	return methodSet{list: list, allow: strings.Join(list, ", ")}
}

// allows reports whether m is forwarded.
func (ms *methodSet) allows(m string) bool {
	if ms.list != nil {
		return slices.Contains(ms.list, m)
	}
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return true
	}
	return false
}

// checkMethods checks a site's Methods: tokens, GET and HEAD among them
// (RFC 9110 §9.1: every general-purpose server supports both, and the
// cache serves them), neither CONNECT (a proxy tunnel, which edged never
// opens) nor PURGE (answered by edged itself).
func checkMethods(list []string) error {
	if list == nil {
		return nil
	}
	for _, m := range list {
		if !validToken(m) {
			return fmt.Errorf("method %q is not a token (RFC 9110 §9.1)", m)
		}
		switch m {
		case http.MethodConnect:
			return fmt.Errorf("CONNECT is never forwarded")
		case "PURGE":
			return fmt.Errorf("PURGE is answered by edged's purge handler, never forwarded")
		}
	}
	for _, m := range [...]string{http.MethodGet, http.MethodHead} {
		if !slices.Contains(list, m) {
			return fmt.Errorf("the methods must include %s", m)
		}
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// rejectMethod answers a request whose method the site does not forward:
// 405 with the site's methods in Allow for a method edged knows, 501 for
// any other (RFC 9110 §15.5.6, §15.6.2).
func (w *responseWriter) rejectMethod(ms *methodSet) {
	w.s.CacheResult = OutcomeReject
	m := w.s.Req.Method
	if !knownMethod(m) {
		w.plainError(http.StatusNotImplemented, "edged; fwd=bypass; detail=method", fmt.Sprintf("the method %q is not implemented", m))
		return
	}
	w.Header().Set("Allow", ms.allow)
	w.plainError(http.StatusMethodNotAllowed, "edged; fwd=bypass; detail=method", fmt.Sprintf("this site does not forward %s requests", m))
}
