//go:build linux

package hostprep

import (
	"context"
	"fmt"
	"sync"

	"github.com/coreos/go-systemd/v22/dbus"
)

// dbusSystemd implements Systemd over systemd's D-Bus API. The connection
// is opened on first use, so hosts that never touch units need no bus.
type dbusSystemd struct {
	mu   sync.Mutex
	conn *dbus.Conn
}

func (d *dbusSystemd) get(ctx context.Context) (*dbus.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		c, err := dbus.NewWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to systemd: %w", err)
		}
		d.conn = c
	}
	return d.conn, nil
}

func (d *dbusSystemd) DaemonReload(ctx context.Context) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	return c.ReloadContext(ctx)
}

func (d *dbusSystemd) Enable(ctx context.Context, units ...string) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	_, _, err = c.EnableUnitFilesContext(ctx, units, false, true)
	return err
}

func (d *dbusSystemd) Disable(ctx context.Context, units ...string) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	_, err = c.DisableUnitFilesContext(ctx, units, false)
	return err
}

// job waits for a unit job to finish and checks its result.
func job(ctx context.Context, what, unit string, start func(chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := start(ch); err != nil {
		return fmt.Errorf("%s %s: %w", what, unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s %s: job %s", what, unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", what, unit, ctx.Err())
	}
}

func (d *dbusSystemd) Restart(ctx context.Context, unit string) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	return job(ctx, "restart", unit, func(ch chan<- string) (int, error) {
		return c.RestartUnitContext(ctx, unit, "replace", ch)
	})
}

func (d *dbusSystemd) Stop(ctx context.Context, unit string) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	return job(ctx, "stop", unit, func(ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, unit, "replace", ch)
	})
}

func (d *dbusSystemd) State(ctx context.Context, unit string) (string, bool, error) {
	c, err := d.get(ctx)
	if err != nil {
		return "", false, err
	}
	props, err := c.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return "", false, fmt.Errorf("state of %s: %w", unit, err)
	}
	active, _ := props["ActiveState"].(string)
	file, _ := props["UnitFileState"].(string)
	return active, file == "enabled", nil
}
