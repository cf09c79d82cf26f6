// Package atomicfile replaces files so that a reader, and the file system after a
// crash, sees either the old content or the new one: never a mix, never an empty file.
// Every file knode writes goes through it (host files, the data directory, the staged
// payload).
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tmpSuffix ends the name of every temporary file this package creates; IsTemp
// recognises them.
const tmpSuffix = ".tmp"

// Write replaces path with data, permission perm (exactly: the umask does not apply).
// See WriteFunc.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc replaces path with what fill writes: fill writes into a temporary file in
// path's directory, which is fsynced, given perm, and renamed over path; then the
// directory is fsynced so that the rename survives a crash. When anything fails, path
// is untouched and the temporary file is removed. The directory must exist.
func WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = fill(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// Symlink makes path a symbolic link to target, replacing whatever path was through
// a rename, and fsyncs path's directory.
func Symlink(target, path string) error {
	dir := filepath.Dir(path)
	var suffix [6]byte
	for range 10 {
		if _, err := rand.Read(suffix[:]); err != nil {
			return fmt.Errorf("link %s -> %s: %w", path, target, err)
		}
		tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+hex.EncodeToString(suffix[:])+tmpSuffix)
		err := os.Symlink(target, tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("link %s -> %s: %w", path, target, err)
		}
		return SyncDir(dir)
	}
	return fmt.Errorf("link %s -> %s: no free temporary name", path, target)
}

// SyncDir fsyncs directory dir, so that the renames and removals in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether a directory entry's name is one of this package's temporary
// files, which a writer killed midway leaves behind; a caller that knows no writer is
// running may delete them.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, tmpSuffix)
}
