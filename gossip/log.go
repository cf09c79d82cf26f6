package gossip

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog records.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[INFO]": slog.LevelInfo} {
		if i := bytes.Index(p, []byte(prefix)); i >= 0 {
			level = l
			line = string(bytes.TrimSpace(p[i+len(prefix):]))
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
