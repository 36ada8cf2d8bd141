package edge

import (
	"log/slog"
	"net/http"
	"time"
)

// ServerConfig holds the client-facing connection limits. Zero values take
// the defaults given per field.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request's header; zero means 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included; zero
	// means none.
	ReadTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request; zero means 120 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits a request header's size; zero means 64 KiB.
	MaxHeaderBytes int
	// ErrorLog receives net/http's connection errors; nil discards them.
	ErrorLog *slog.Logger
}

// NewServer returns an *http.Server running h with cfg's limits. Writes are
// bounded per write by the Handler (Config.WriteTimeout), not for the whole
// response, so that large bodies to healthy clients are not cut off.
func NewServer(h http.Handler, cfg ServerConfig) *http.Server {
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.ErrorLog == nil {
		cfg.ErrorLog = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.ErrorLog.Handler(), slog.LevelWarn),
	}
}
