package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubelet.conf")
	for _, content := range []string{"old\n", "new\n"} {
		// 0666 would be 0644 under the usual umask if the mode went through open(2).
		if err := Write(path, []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("content = %q (%v), want %q", got, err, content)
		}
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o666 {
			t.Fatalf("mode = %v (%v), want 0666", info.Mode(), err)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Fatalf("directory holds %v, want only kubelet.conf", names)
		}
	}
}

func TestFailedFillKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	if err := Write(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("stream broke")
	sawTemp := false
	err := WriteFunc(path, 0o600, func(w io.Writer) error {
		io.WriteString(w, "half")
		for _, name := range entries(t, dir) {
			if name != "ca.crt" {
				sawTemp = IsTemp(name)
			}
		}
		return broken
	})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want the fill error naming %s", err, path)
	}
	if !sawTemp {
		t.Error("IsTemp does not recognise the temporary file being written")
	}
	if IsTemp("ca.crt") || IsTemp(".kube") {
		t.Error("IsTemp claims an ordinary name")
	}
	got, _ := os.ReadFile(path)
	if string(got) != "old" {
		t.Errorf("content after a failed write = %q, want the old one", got)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("a failed write left %v", names)
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f")
	err := Write(path, nil, 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want not-exist naming %s", err, path)
	}
}

func TestSymlinkReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubectl")
	if err := os.WriteFile(path, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"kubectl-1.36.2", "kubectl-1.36.3"} {
		if err := Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(path); err != nil || got != target {
			t.Fatalf("link = %q (%v), want %q", got, err, target)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Fatalf("directory holds %v, want only kubectl", names)
		}
	}
}

func TestSyncDirNamesMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := SyncDir(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want not-exist naming %s", err, dir)
	}
}
