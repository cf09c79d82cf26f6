package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
)

// Snapshot files are named <kind>-<node>-<UTC time>.db in one directory:
// kind "scheduled" for the agent's periodic ones (the only ones pruned),
// "manual" for `knode etcd snapshot save`.
const (
	Scheduled = "scheduled"
	Manual    = "manual"
	stamp     = "20060102T150405Z"
)

// SnapshotFile is one saved snapshot.
type SnapshotFile struct {
	Path string    `json:"path"`
	Kind string    `json:"kind"`
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
}

// Save writes a snapshot of the member at the client's first endpoint into
// dir (created 0700) as a file of kind for node, and returns its path. etcd's
// snapshot package writes it to a temporary name, syncs it and renames it, so
// a file with the final name is complete.
func (c *Client) Save(ctx context.Context, dir, kind, node string, now time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("snapshot directory: %w", err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.db", kind, node, now.UTC().Format(stamp)))
	cfg := c.cfg
	cfg.Endpoints = cfg.Endpoints[:1] // the snapshot of one member
	if _, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, p); err != nil {
		return "", fmt.Errorf("etcd snapshot from %s to %s: %w", cfg.Endpoints[0], p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", p, err)
	}
	return p, nil
}

// List returns the snapshots in dir, newest first; a missing dir has none.
// Files that are not named like a snapshot are left out.
func List(dir string) ([]SnapshotFile, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []SnapshotFile
	for _, e := range ents {
		f, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f.Path, f.Size = filepath.Join(dir, e.Name()), info.Size()
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b SnapshotFile) int { return b.Time.Compare(a.Time) })
	return out, nil
}

// parseName reads <kind>-<node>-<stamp>.db (node names may hold dashes).
func parseName(name string) (SnapshotFile, bool) {
	base, ok := strings.CutSuffix(name, ".db")
	if !ok {
		return SnapshotFile{}, false
	}
	kind, rest, ok := strings.Cut(base, "-")
	i := strings.LastIndex(rest, "-")
	if !ok || i <= 0 || (kind != Scheduled && kind != Manual) {
		return SnapshotFile{}, false
	}
	t, err := time.Parse(stamp, rest[i+1:])
	if err != nil {
		return SnapshotFile{}, false
	}
	return SnapshotFile{Kind: kind, Node: rest[:i], Time: t}, true
}

// Prune removes all but the newest keep scheduled snapshots in dir and
// returns the paths it removed. Manual snapshots are the operator's to keep.
func Prune(dir string, keep int) ([]string, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	n := 0
	for _, f := range all {
		if f.Kind != Scheduled {
			continue
		}
		if n++; n <= keep {
			continue
		}
		if err := os.Remove(f.Path); err != nil {
			return removed, fmt.Errorf("prune snapshot: %w", err)
		}
		removed = append(removed, f.Path)
	}
	return removed, nil
}
