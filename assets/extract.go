package assets

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"knode.dev/knode/internal/atomicfile"
)

// ExtractFS stages one file of the payload, name, into dir as dir/<the base of its staged
// path>, with Stage's guarantees: it decodes the file's blob up to the file, checks every
// file it decodes against the manifest's size and sha256, writes through a temporary file,
// fsync and rename, and writes a stamp naming the payload only after that; a second call
// finds the stamp and the file's size and returns after a few stats. The launcher uses it
// for a user other than root, who runs the knode program from a cache of their own and
// needs none of the rest. written reports whether this call wrote the file.
func ExtractFS(ctx context.Context, payload fs.FS, dir, name string) (path string, written bool, err error) {
	m, id, err := readManifest(payload)
	if err != nil {
		return "", false, err
	}
	f, ok := m.File(name)
	if !ok {
		return "", false, fmt.Errorf("%w: the payload has no file %s", ErrCorrupt, name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := checkOwned(dir); err != nil {
		return "", false, err
	}
	unlock, err := lock(ctx, filepath.Join(dir, lockName))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	removeTemps(dir) // a killed extraction's; under the lock every one is stale
	path = filepath.Join(dir, filepath.Base(f.Path))
	stamp := filepath.Join(dir, stampName)
	if data, err := os.ReadFile(stamp); err == nil && string(data) == id+"\n" {
		if info, err := os.Lstat(path); err == nil && info.Mode().IsRegular() && info.Size() == f.Size {
			return path, false, nil
		}
	}
	b, _ := m.Blob(f.Blob) // Validate guarantees it exists
	src, err := payload.Open(b.Name)
	if err != nil {
		return "", false, fmt.Errorf("extract %s: open payload blob %s: %w", name, b.Name, err)
	}
	defer src.Close()
	stream, err := newStream(src, b.Name)
	if err != nil {
		return "", false, err
	}
	defer stream.close()
	for _, before := range b.Files {
		if before == name {
			break
		}
		bf, _ := m.File(before)
		if err := stream.next(io.Discard, bf); err != nil {
			return "", false, fmt.Errorf("extract %s: %w", name, err)
		}
	}
	err = atomicfile.WriteFunc(path, f.Mode, func(w io.Writer) error { return stream.next(w, f) })
	if err != nil {
		return "", false, fmt.Errorf("extract %s to %s: %w", name, path, err)
	}
	if err := atomicfile.Write(stamp, []byte(id+"\n"), 0o644); err != nil {
		return "", false, err
	}
	return path, true, nil
}
