package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogWriter: memberlist's "[LEVEL] memberlist: ..." lines become slog
// records at their level; DEBUG lines are dropped.
func TestLogWriter(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", ""},
		{"[INFO] memberlist: Suspect b has failed, no acks received\n", `level=INFO msg="memberlist: Suspect b has failed, no acks received"`},
		{"[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed\n", `level=WARN msg="memberlist: Was able to connect to b over TCP but UDP probes failed"`},
		{"[ERR] memberlist: Failed to send ping: boom\n", `level=ERROR msg="memberlist: Failed to send ping: boom"`},
		{"unprefixed\n", `level=INFO msg="memberlist: unprefixed"`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := logWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			Level:       slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
		}))}
		if n, err := w.Write([]byte(tt.line)); n != len(tt.line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", tt.line, n, err)
		}
		if got := strings.TrimSpace(buf.String()); got != tt.want {
			t.Errorf("Write(%q) logged %q, want %q", tt.line, got, tt.want)
		}
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
