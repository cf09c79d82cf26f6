//go:build linux

package hostprep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// unitStandIn stands in for systemd, which the test machine does not run as
// PID 1: it keeps each unit's active and enabled state, nothing more.
type unitStandIn struct {
	mu              sync.Mutex
	active, enabled map[string]bool
}

func (u *unitStandIn) set(m map[string]bool, v bool, units ...string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range units {
		m[n] = v
	}
	return nil
}

func (u *unitStandIn) DaemonReload(context.Context) error { return nil }
func (u *unitStandIn) Enable(_ context.Context, units ...string) error {
	return u.set(u.enabled, true, units...)
}
func (u *unitStandIn) Disable(_ context.Context, units ...string) error {
	return u.set(u.enabled, false, units...)
}
func (u *unitStandIn) Restart(_ context.Context, unit string) error {
	return u.set(u.active, true, unit)
}
func (u *unitStandIn) Stop(_ context.Context, unit string) error { return u.set(u.active, false, unit) }
func (u *unitStandIn) State(_ context.Context, unit string) (string, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.active[unit] {
		return "active", u.enabled[unit], nil
	}
	return "inactive", u.enabled[unit], nil
}

// tree renders every non-directory under root: path, type and mode, and a
// hash of a regular file's bytes.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v", strings.TrimPrefix(p, root), fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestNetnsExistingHost (root): a host (a network namespace, its files under
// a temporary root) where another containerd ran before knode: its config
// (0600: it may hold registry credentials), a CNI config and a sysctl file at
// knode's paths, flannel's CNI config left in /etc/cni/net.d, its images, and its daemon
// answering on containerd's socket. Preflight refuses the host, naming what
// runs and the flag, and changes nothing; allowed to go on, knode backs each
// file up and replaces it and sets its sysctls; reset leaves every file as it
// was, byte for byte and mode for mode, the sysctls and the network as they
// were, and the host's containerd enabled and running again.
//
// systemd is the one stand-in: this machine kind has no systemd as PID 1 (so
// the "systemd" preflight check is ignored throughout).
func TestNetnsExistingHost(t *testing.T) {
	l := newLab(t, 1)
	ns, root := l.hosts[0], l.roots[0]
	host := []struct {
		path, data string
		mode       fs.FileMode
	}{
		{ContainerdConfPath, "# the host's containerd\nversion = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"r.example\".auth]\n  password = \"hunter2\"\n", 0o600},
		{CNIConfPath, `{"cniVersion":"1.0.0","name":"host","plugins":[{"type":"bridge","bridge":"cni0"}]}` + "\n", 0o644},
		// What kubeadm reset leaves: it sorts before knode's name, so knode keeps its own directory.
		{"/etc/cni/net.d/10-flannel.conflist", `{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}` + "\n", 0o644},
		{SysctlConfPath, "# the host's own\nnet.ipv4.ip_forward = 0\n", 0o640},
		{ContainerdRoot + "/io.containerd.metadata.v1.bolt/meta.db", "images of the host", 0o600},
		{"/lib/systemd/system/containerd.service", "[Service]\nExecStart=/usr/bin/containerd\n", 0o644},
	}
	for _, f := range host {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	// The host's containerd, answering on its socket (started by hand: no unit runs it yet).
	sock := filepath.Join(root, ContainerdSocket)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	units := &unitStandIn{active: map[string]bool{}, enabled: map[string]bool{}}
	beforeFiles, beforeNet := tree(t, root), l.settled(0)

	ctx := context.Background()
	phases := []Phase{preflightPhase(), kernelPhase(), cniPhase(), containerdPhase()}
	s := l.spec(0, Routed)
	var out bytes.Buffer
	host0 := func() (*Host, error) {
		h, err := NewLinuxHost(root)
		if err != nil {
			return nil, err
		}
		h.Systemd = units
		return h, nil
	}
	apply := func(ignore ...string) error {
		return in(ns, func() error {
			h, err := host0()
			if err != nil {
				return err
			}
			_, err = (&Runner{Phases: phases, IgnorePreflightErrors: append(ignore, "systemd"), Out: &out}).Apply(ctx, s, h)
			return err
		})
	}
	refused := func(want string) {
		t.Helper()
		err := apply()
		for _, w := range []string{"[existing-runtime] " + want, "--ignore-preflight-errors=existing-runtime", "knode reset puts its files back"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("preflight: %v\nwant %q", err, w)
			}
		}
		if got := tree(t, root); got != beforeFiles {
			t.Fatalf("a refused run changed files:\n%s\nbefore:\n%s", got, beforeFiles)
		}
		if got := l.snapshot(0); got != beforeNet {
			t.Fatalf("a refused run changed the network or sysctls:\n%s\nbefore:\n%s", got, beforeNet)
		}
	}
	refused("a container runtime answers on " + ContainerdSocket + ", and not as containerd.service")
	// Now as the distribution runs it: a unit, enabled and active.
	units.Enable(ctx, "containerd.service")
	units.Restart(ctx, "containerd.service")
	refused("containerd.service is running and is not knode's")

	spec := s.withDefaults()
	if err := apply("existing-runtime"); err != nil {
		t.Fatalf("allowed to take over: %v\n%s", err, out.String())
	}
	for _, f := range host[:4] {
		got, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil {
			t.Fatal(err)
		}
		replaced := f.path == ContainerdConfPath || f.path == CNIConfPath || f.path == SysctlConfPath
		if replaced == (string(got) == f.data) {
			t.Errorf("%s after the run (replaced: %v):\n%s", f.path, replaced, got)
		}
		if !replaced {
			continue
		}
		backup := filepath.Join(root, backupPath(&spec, f.path))
		b, err := os.ReadFile(backup)
		if fi, serr := os.Stat(backup); err != nil || serr != nil || string(b) != f.data || fi.Mode().Perm() != f.mode {
			t.Errorf("backup of %s: %q %v, err %v", f.path, b, f.mode, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, ContainerdConfPath)); !strings.Contains(string(b), "conf_dir = '"+CNIConfDir+"'") {
		t.Errorf("knode's containerd does not read CNI configurations from %s alone:\n%s", CNIConfDir, b)
	}
	if v, err := sysctlIn(ns, "ipv4/ip_forward"); v != "1" {
		t.Errorf("ip_forward = %q (%v) after the run, want 1", v, err)
	}
	// knode's containerd runs now: its socket is knode's, no flag needed.
	if err := apply(); err != nil {
		t.Fatalf("second run: %v", err)
	}

	err = in(ns, func() error {
		h, err := host0()
		if err != nil {
			return err
		}
		_, err = Reset(ctx, h, ResetOptions{Phases: phases, Out: &out})
		return err
	})
	if err != nil {
		t.Fatalf("reset: %v\n%s", err, out.String())
	}
	if got := tree(t, root); got != beforeFiles {
		t.Errorf("files after reset:\n%s\nbefore knode:\n%s", got, beforeFiles)
	}
	if got := l.snapshot(0); got != beforeNet {
		t.Errorf("network and sysctls after reset:\n%s\nbefore knode:\n%s", got, beforeNet)
	}
	if a, e, _ := units.State(ctx, "containerd.service"); a != "active" || !e {
		t.Errorf("the host's containerd after reset: %s, enabled %v; want active and enabled", a, e)
	}
}

// sysctlIn reads a parameter of namespace ns (a path under /proc/sys/net).
func sysctlIn(ns, name string) (string, error) {
	var v []byte
	err := in(ns, func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/net/" + name)
		return err
	})
	return strings.TrimSpace(string(v)), err
}

// settled returns host i's snapshot once two taken 100 ms apart agree: a
// veth just set up may still change its state flags.
func (l *lab) settled(i int) string {
	prev := l.snapshot(i)
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		cur := l.snapshot(i)
		if cur == prev {
			return cur
		}
		prev = cur
	}
	return prev
}
