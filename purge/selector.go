package purge

import (
	"log/slog"
	"net"
	"strings"

	"github.com/edged-proxy/edged/purge/selector"
)

// Selector names what one purge removes; see package selector for its
// grammar, validation and parsed form.
type Selector = selector.Selector

// RequestError is an invalid purge request: the HTTP handlers answer it with
// 400 and its message.
type RequestError = selector.Error

// defaultSiteOf is Config.SiteOf's default: the host lower-cased, without port.
func defaultSiteOf(hp string) string {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		hp = h
	}
	return strings.ToLower(strings.Trim(hp, "[]"))
}

// LogValue logs the counts by kind.
func (m Matched) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("urls", m.URLs), slog.Int("prefixes", m.Prefixes), slog.Int("tags", m.Tags), slog.Int("hosts", m.Hosts))
}
