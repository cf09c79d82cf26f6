//go:build linux

package hostprep

import (
	"os"
	"path/filepath"
	"strings"
)

// procSysctl implements Sysctl through /proc/sys. Network parameters are
// those of the calling thread's network namespace.
type procSysctl struct{ dir string }

func (p procSysctl) path(name string) string {
	return filepath.Join(p.dir, strings.ReplaceAll(name, ".", "/"))
}

func (p procSysctl) Get(name string) (string, error) {
	b, err := os.ReadFile(p.path(name))
	return strings.TrimSpace(string(b)), err
}

func (p procSysctl) Set(name, value string) error {
	return os.WriteFile(p.path(name), []byte(value+"\n"), 0o644)
}
