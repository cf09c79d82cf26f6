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
		if err := e.Host.Files.WriteFile(name, data, perm); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	})}, nil
}

// planRemove returns changes removing each existing file.
func planRemove(e *Env, names ...string) []Change {
	var cs []Change
	for _, name := range names {
		if !e.Host.Files.Exists(name) {
			continue
		}
		cs = append(cs, change("remove "+name, func(context.Context) error {
			if err := e.Host.Files.RemoveAll(name); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			return nil
		}))
	}
	return cs
}

func fsMode(perm uint32) fs.FileMode { return fs.FileMode(perm) }
