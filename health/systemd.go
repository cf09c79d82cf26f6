package health

import (
	"context"
	"fmt"
	"sync"

	"github.com/coreos/go-systemd/v22/dbus"
)

// Systemd reads unit states over systemd's D-Bus API. The connection is
// opened on first use and again after an error (systemd restarted).
type Systemd struct {
	mu   sync.Mutex
	conn *dbus.Conn
}

// ActiveState implements Units.
func (s *Systemd) ActiveState(ctx context.Context, unit string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		// The connection lives until Close: godbus closes a connection
		// when the context it was made with ends, so not the check's.
		c, err := dbus.NewWithContext(context.WithoutCancel(ctx))
		if err != nil {
			return "", "", fmt.Errorf("connect to systemd: %w", err)
		}
		s.conn = c
	}
	st, err := s.conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil {
		s.conn.Close()
		s.conn = nil
		return "", "", err
	}
	if len(st) == 0 {
		return "inactive", "dead", nil
	}
	return st[0].ActiveState, st[0].SubState, nil
}

// Close drops the connection.
func (s *Systemd) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
