package hostprep

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
)

// planFile returns a change writing data to name unless it already holds it.
func planFile(e *Env, name string, data []byte, perm fs.FileMode) ([]Change, error) {
	old, err := e.Host.Files.ReadFile(name)
	switch {
	case err == nil && bytes.Equal(old, data):
		return nil, nil
	case err != nil && !notExist(err):
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	e.pendingWrites = append(e.pendingWrites, name)
	what := "write " + name
	if err == nil {
		what = "update " + name
	}
	return []Change{change(what, func(context.Context) error {
		if err := noteWrite(e, name); err != nil {
			return err
		}
		if err := e.Host.Files.WriteFile(name, data, perm); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	})}, nil
}

// planRemove returns changes undoing knode's work at each name (undoPath):
// what knode created is removed, what it overwrote is put back, and another
// installation's state stays.
func planRemove(e *Env, names ...string) []Change {
	l, err := readLedger(e)
	if err != nil {
		e.Log.Warn("ledger unreadable: removing what knode would have created", "err", err)
		l = map[string]string{}
	}
	var cs []Change
	for _, name := range names {
		cs = append(cs, undoPath(e, l, name)...)
	}
	return cs
}

func fsMode(perm uint32) fs.FileMode { return fs.FileMode(perm) }
