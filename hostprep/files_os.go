package hostprep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// WriteFile implements Files: a temporary file renamed over name.
func (r RootFiles) WriteFile(name string, data []byte, perm fs.FileMode) error {
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
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

// Exists implements Files.
func (r RootFiles) Exists(name string) bool {
	_, err := os.Lstat(r.path(name))
	return err == nil
}
