package purge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Metric outcomes.
const (
	outcomeOK           = "ok"
	outcomeUnauthorized = "unauthorized"
	outcomeForbidden    = "forbidden"
	outcomeBadRequest   = "bad_request"
	outcomeError        = "error"
	kindUnknown         = "unknown"
)

// SoftPurgeHeader set to "1" or "true" on a PURGE request makes it soft.
const SoftPurgeHeader = "Soft-Purge"

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// refuse answers a refused request, counts and logs it.
func (p *Purger) refuse(w http.ResponseWriter, r *http.Request, status int, kind, outcome, who, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edged purge"`)
	}
	p.met.purges.WithLabelValues(kind, outcome).Inc()
	p.log.Warn("purge refused", "who", who, "status", status, "reason", msg, "method", r.Method, "path", r.URL.Path)
	writeJSON(w, status, errorBody{Error: msg})
}

const noTokensMsg = "purge API disabled: no purge tokens are configured; set purge.tokens in the config file, or -purge-token / EDGED_PURGE_TOKEN"

// authenticate returns the token of an admin API request, or answers 401/403
// and returns nil.
func (p *Purger) authenticate(w http.ResponseWriter, r *http.Request, who string) *tokenEntry {
	if len(p.tokens) == 0 {
		p.refuse(w, r, http.StatusForbidden, kindUnknown, outcomeForbidden, who, noTokensMsg)
		return nil
	}
	tok, ok := bearer(r)
	if !ok {
		p.refuse(w, r, http.StatusUnauthorized, kindUnknown, outcomeUnauthorized, who, `missing bearer token: send "Authorization: Bearer <token>"`)
		return nil
	}
	t := p.matchToken(tok)
	if t == nil {
		p.refuse(w, r, http.StatusUnauthorized, kindUnknown, outcomeUnauthorized, who, "invalid bearer token")
		return nil
	}
	return t
}

func remoteWho(r *http.Request) string { return "ip:" + r.RemoteAddr }

// servePost is POST /purge.
func (p *Purger) servePost(w http.ResponseWriter, r *http.Request) {
	t := p.authenticate(w, r, remoteWho(r))
	if t == nil {
		return
	}
	who := "token:" + t.name
	sel, status, err := p.decodeSelector(w, r)
	if err != nil {
		p.refuse(w, r, status, kindUnknown, outcomeBadRequest, who, err.Error())
		return
	}
	if err := sel.Validate(p.maxItems); err != nil {
		p.refuse(w, r, http.StatusBadRequest, sel.Kind(), outcomeBadRequest, who, err.Error())
		return
	}
	if msg := p.authorize(t, sel); msg != "" {
		p.refuse(w, r, http.StatusForbidden, sel.Kind(), outcomeForbidden, who, msg)
		return
	}
	p.answer(w, r, sel, who)
}

func (p *Purger) answer(w http.ResponseWriter, r *http.Request, sel Selector, who string) {
	res, err := p.apply(r.Context(), sel, who)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, errorBody{Error: err.Error() + "; nothing was published to the fleet; the purge may be partly applied, retry it"})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// decodeSelector reads exactly one JSON object with known fields only.
func (p *Purger) decodeSelector(w http.ResponseWriter, r *http.Request) (Selector, int, error) {
	var sel Selector
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, p.maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&sel)
	if err == nil {
		var extra json.RawMessage
		switch err2 := dec.Decode(&extra); {
		case errors.Is(err2, io.EOF):
		case err2 == nil:
			return sel, http.StatusBadRequest, errors.New("body must hold exactly one JSON object; found more after it")
		default:
			err = err2
		}
	}
	if err == nil {
		return sel, 0, nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &big):
		return sel, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", big.Limit)
	case errors.Is(err, io.EOF):
		return sel, http.StatusBadRequest, errors.New(`empty body: send a JSON object such as {"urls": ["https://example.com/a"]}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return sel, http.StatusBadRequest, errors.New("malformed JSON: body ends in the middle of a value")
	case errors.As(err, &syn):
		return sel, http.StatusBadRequest, fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return sel, http.StatusBadRequest, fmt.Errorf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return sel, http.StatusBadRequest, fmt.Errorf("expected a JSON object, got JSON %s", typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return sel, http.StatusBadRequest, fmt.Errorf(`unknown field %s: allowed are "urls", "prefixes", "tags", "hosts" and "soft"`, strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return sel, http.StatusBadRequest, fmt.Errorf("invalid body: %v", err)
}

// serveReceipt is GET /purge/{id}.
func (p *Purger) serveReceipt(w http.ResponseWriter, r *http.Request) {
	if t := p.authenticate(w, r, remoteWho(r)); t == nil {
		return
	}
	id := r.PathValue("id")
	if !ValidID(id) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no purge with id %q", id)})
		return
	}
	rc, ok, err := p.Receipt(r.Context(), id)
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: fmt.Sprintf("purge %q is not known to this node and the fleet's receipts are unavailable: %v", id, err)})
	case !ok:
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no purge with id %q", id)})
	default:
		writeJSON(w, http.StatusOK, rc)
	}
}

// MethodHandler serves the conventional "PURGE /path HTTP/1.1" on the edge
// listener: it purges http://Host/path and https://Host/path (query
// included, every Vary variant). It is allowed when the client address is in
// Config.AllowCIDRs, or with a valid bearer token (honouring its site
// limits); otherwise 403. "Soft-Purge: 1" makes it soft. Other methods get 405.
func (p *Purger) MethodHandler() http.Handler {
	return http.HandlerFunc(p.servePurgeMethod)
}

func (p *Purger) servePurgeMethod(w http.ResponseWriter, r *http.Request) {
	if r.Method != "PURGE" {
		w.Header().Set("Allow", "PURGE")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "only the PURGE method is served here"})
		return
	}
	target := r.URL.RequestURI()
	if !strings.HasPrefix(target, "/") {
		p.refuse(w, r, http.StatusBadRequest, "url", outcomeBadRequest, remoteWho(r), "PURGE needs an origin-form target: PURGE /path HTTP/1.1")
		return
	}
	sel := Selector{URLs: []string{"http://" + r.Host + target, "https://" + r.Host + target}}
	switch strings.ToLower(r.Header.Get(SoftPurgeHeader)) {
	case "1", "true", "yes", "on":
		sel.Soft = true
	}

	addr, allowed := p.clientAllowed(r.RemoteAddr)
	who := "ip:" + addr.String()
	var tok *tokenEntry
	if !allowed {
		if v, ok := bearer(r); ok {
			tok = p.matchToken(v)
		}
		if tok == nil {
			p.refuse(w, r, http.StatusForbidden, "url", outcomeForbidden, who, fmt.Sprintf("PURGE is not allowed from %s without a valid bearer token", addr))
			return
		}
		who = "token:" + tok.name
	}
	if err := sel.Validate(p.maxItems); err != nil {
		p.refuse(w, r, http.StatusBadRequest, "url", outcomeBadRequest, who, fmt.Sprintf("PURGE of host %q and target %q: %v", r.Host, target, err))
		return
	}
	if tok != nil {
		if msg := p.authorize(tok, sel); msg != "" {
			p.refuse(w, r, http.StatusForbidden, "url", outcomeForbidden, who, msg)
			return
		}
	}
	p.answer(w, r, sel, who)
}
