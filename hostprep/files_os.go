package hostprep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"knode.dev/knode/internal/atomicfile"
)

// RootFiles implements Files on the real filesystem, with every path placed
// under Root ("" or "/" for the host itself; a temporary directory in tests).
type RootFiles struct{ Root string }

func (r RootFiles) path(name string) string {
	if !filepath.IsAbs(name) {
		panic(fmt.Sprintf("hostprep: relative path %q", name))
	}
	return filepath.Join(r.Root, name)
}

// ReadFile implements Files.
func (r RootFiles) ReadFile(name string) ([]byte, error) { return os.ReadFile(r.path(name)) }

// WriteFile implements Files: the file is replaced atomically and durably
// (atomicfile), creating its directory (0755) when missing.
func (r RootFiles) WriteFile(name string, data []byte, perm fs.FileMode) error {
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	return atomicfile.Write(p, data, perm)
}

// Remove implements Files.
func (r RootFiles) Remove(name string) error {
	if err := os.Remove(r.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll implements Files. On the host itself (no root prefix) it first
// unmounts what is mounted below the path, and empties a mount point rather
// than removing it.
func (r RootFiles) RemoveAll(name string) error {
	if r.Root == "" || r.Root == "/" {
		return removeAllMounted(r.path(name))
	}
	return os.RemoveAll(r.path(name))
}

// MkdirAll implements Files.
func (r RootFiles) MkdirAll(name string, perm fs.FileMode) error {
	return os.MkdirAll(r.path(name), perm)
}

// Symlink implements Files: a temporary link renamed over name.
func (r RootFiles) Symlink(target, name string) error {
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p), fmt.Sprintf(".%s.%d.link", filepath.Base(p), os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Readlink implements Files.
func (r RootFiles) Readlink(name string) (string, error) { return os.Readlink(r.path(name)) }

// Mode implements Files.
func (r RootFiles) Mode(name string) (fs.FileMode, error) {
	fi, err := os.Lstat(r.path(name))
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}

// Rename implements Files; an existing newName is refused rather than
// replaced (os.Rename would replace an empty directory).
func (r RootFiles) Rename(oldName, newName string) error {
	if _, err := os.Lstat(r.path(newName)); err == nil {
		return fmt.Errorf("rename %s to %s: %w", oldName, newName, fs.ErrExist)
	}
	return os.Rename(r.path(oldName), r.path(newName))
}

// Exists implements Files.
func (r RootFiles) Exists(name string) bool {
	_, err := os.Lstat(r.path(name))
	return err == nil
}
