//go:build linux

package hostprep

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelModules implements Modules from /proc, /sys and /lib/modules, and
// loads modules with modprobe.
type kernelModules struct{}

// Loaded reports whether the feature is present now, by the traces it
// leaves even when built in.
func (kernelModules) Loaded(name string) bool {
	if _, err := os.Stat(filepath.Join("/sys/module", name)); err == nil {
		return true
	}
	switch name {
	case "overlay":
		b, _ := os.ReadFile("/proc/filesystems")
		return bytes.Contains(b, []byte("\toverlay\n"))
	case "br_netfilter":
		_, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables")
		return err == nil
	}
	return false
}

// Available reports whether the module is loaded, built in or on disk.
func (k kernelModules) Available(name string) bool {
	if k.Loaded(name) {
		return true
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	for _, f := range []string{"modules.builtin", "modules.dep"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		for _, l := range strings.Split(string(b), "\n") {
			ko, _, _ := strings.Cut(l, ":")
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(ko), ".xz"), ".zst"), ".ko")
			if strings.ReplaceAll(base, "-", "_") == name {
				return true
			}
		}
	}
	return false
}

func (kernelModules) Load(name string) error {
	out, err := exec.Command("modprobe", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}
