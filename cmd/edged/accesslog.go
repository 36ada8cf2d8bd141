package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/edged-proxy/edged/edge"
	"github.com/edged-proxy/edged/internal/config"
	"github.com/edged-proxy/edged/internal/logbuf"
)

// accessLog is the daemon's access-log output: a buffered writer over
// standard output or log.access_file, which SIGUSR1 reopens.
type accessLog struct {
	buf  *logbuf.Writer
	file *reopenFile // nil on standard output
}

// openAccessLog opens the access log of cfg (nil when log.access is off).
func openAccessLog(cfg config.Log, stdout io.Writer) (*accessLog, error) {
	if !cfg.Access {
		return nil, nil
	}
	a := &accessLog{}
	out := stdout
	if cfg.AccessFile != "" {
		f, err := openReopenFile(cfg.AccessFile)
		if err != nil {
			return nil, err
		}
		a.file, out = f, f
	}
	// Buffered: one write system call per 64 KiB or 200 ms, not per
	// request.
	a.buf = logbuf.New(out, 0, 0)
	return a, nil
}

// writer is what the edge writes lines to; nil when the log is off.
func (a *accessLog) writer() io.Writer {
	if a == nil {
		return nil
	}
	return a.buf
}

// reopen writes out the lines buffered so far (to the file as it was, now
// perhaps renamed by logrotate), then opens the file at its path afresh:
// a line goes whole to one file or the other, none is lost.
func (a *accessLog) reopen() error {
	if a == nil || a.file == nil {
		return nil
	}
	a.buf.Flush()
	return a.file.reopen()
}

// close flushes the buffer and closes the file.
func (a *accessLog) close() error {
	if a == nil {
		return nil
	}
	err := a.buf.Close()
	if a.file != nil {
		err = errors.Join(err, a.file.close())
	}
	return err
}

// reopenOnUSR1 reopens the access log on each SIGUSR1 (logrotate's
// postrotate) until ctx ends or the returned stop is called; each
// reopen is logged to logger.
func (a *accessLog) reopenOnUSR1(ctx context.Context, logger *slog.Logger) (stop func()) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-usr1:
				if err := a.reopen(); err != nil {
					logger.Error("access log not reopened", "err", err)
				} else if a != nil && a.file != nil {
					logger.Info("access log reopened", "file", a.file.path)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(usr1)
		cancel()
		<-done
	}
}

// reopenFile is a file opened for append that can be reopened at its
// path. Each Write goes whole to one file.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return &reopenFile{path: path, f: f}, nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// reopen opens the path afresh and closes the old file; on error the old
// file stays in use.
func (r *reopenFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenFile) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// accessLogChecks reports log.access_fields names that are no field, at
// their keys.
func accessLogChecks(cfg *config.Config) []*config.Error {
	var errs []*config.Error
	for i, name := range cfg.Log.AccessFields {
		if err := edge.CheckAccessLog(edge.AccessJSON, []string{name}); err != nil {
			errs = append(errs, &config.Error{Path: fmt.Sprintf("log.access_fields[%d]", i),
				Msg: fmt.Sprintf("unknown field %q; the fields are %v", name, edge.AccessFieldNames())})
		}
	}
	if len(cfg.Log.AccessFields) > 0 && cfg.Log.AccessFormat == edge.AccessCombined {
		errs = append(errs, &config.Error{Path: "log.access_fields", Msg: "fields apply to access_format json only; combined has nginx's fixed fields"})
	}
	return errs
}

// durationsAsText renders time.Duration (and config.Duration) attributes
// as Go writes them ("1.5s"), not as slog's JSON handler does (integer
// nanoseconds): the daemon's log is read by people first. Use as
// HandlerOptions.ReplaceAttr.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case slog.KindAny:
		if d, ok := a.Value.Any().(config.Duration); ok {
			return slog.String(a.Key, d.String())
		}
	}
	return a
}
