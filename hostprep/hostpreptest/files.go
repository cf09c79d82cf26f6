package hostpreptest

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
)

type fakeFile struct {
	data []byte
	perm fs.FileMode
}

// Files is an in-memory filesystem of regular files; directories exist
// implicitly while they hold files, or as entries of their own once made by
// MkdirAll.
type Files struct {
	mu   sync.Mutex
	Data map[string]fakeFile
	Fail map[string]error
}

// Mode implements hostprep.Files.
func (f *Files) Mode(name string) (fs.FileMode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.Data[name]
	if !ok {
		return 0, fmt.Errorf("stat %s: %w", name, fs.ErrNotExist)
	}
	return x.perm.Perm(), nil
}

// ReadFile implements hostprep.Files.
func (f *Files) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.Data[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	}
	return slices.Clone(x.data), nil
}

// WriteFile implements hostprep.Files.
func (f *Files) WriteFile(name string, data []byte, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	f.Data[name] = fakeFile{slices.Clone(data), perm}
	return nil
}

// Remove implements hostprep.Files.
func (f *Files) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Data, name)
	return nil
}

// Rename implements hostprep.Files: every file under oldName moves under
// newName, which must not exist.
func (f *Files) Rename(oldName, newName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[oldName]; err != nil {
		return err
	}
	under := func(k, dir string) (string, bool) {
		if k == dir {
			return "", true
		}
		rest, ok := strings.CutPrefix(k, strings.TrimSuffix(dir, "/")+"/")
		return "/" + rest, ok
	}
	moved := map[string]fakeFile{}
	for k, v := range f.Data {
		if _, ok := under(k, newName); ok {
			return fmt.Errorf("rename %s to %s: %w", oldName, newName, fs.ErrExist)
		}
		if rest, ok := under(k, oldName); ok {
			moved[strings.TrimSuffix(newName+rest, "/")] = v
		}
	}
	if len(moved) == 0 {
		return fmt.Errorf("rename %s: %w", oldName, fs.ErrNotExist)
	}
	for k := range f.Data {
		if _, ok := under(k, oldName); ok {
			delete(f.Data, k)
		}
	}
	maps.Copy(f.Data, moved)
	return nil
}

// RemoveAll implements hostprep.Files.
func (f *Files) RemoveAll(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.Data {
		if k == name || strings.HasPrefix(k, strings.TrimSuffix(name, "/")+"/") {
			delete(f.Data, k)
		}
	}
	return nil
}

// MkdirAll implements hostprep.Files.
func (f *Files) MkdirAll(name string, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	if _, ok := f.Data[name]; !ok {
		f.Data[name] = fakeFile{perm: perm | fs.ModeDir}
	}
	return nil
}

// Symlink implements hostprep.Files: a link is an entry holding its target.
func (f *Files) Symlink(target, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	f.Data[name] = fakeFile{data: []byte(target), perm: fs.ModeSymlink | 0o777}
	return nil
}

// Readlink implements hostprep.Files.
func (f *Files) Readlink(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.Data[name]
	if !ok || x.perm&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("readlink %s: %w", name, fs.ErrInvalid)
	}
	return string(x.data), nil
}

// Exists implements hostprep.Files.
func (f *Files) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.Data {
		if k == name || strings.HasPrefix(k, strings.TrimSuffix(name, "/")+"/") {
			return true
		}
	}
	return false
}

// String lists files with their mode (contents vary with fresh keys, so
// tests compare the ones that matter separately).
func (f *Files) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Data) {
		fmt.Fprintf(&b, "%s %v\n", k, f.Data[k].perm)
	}
	return b.String()
}
