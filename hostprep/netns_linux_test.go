//go:build linux

package hostprep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lab is a set of network namespaces standing for hosts, each with eth0 on
// 172.31.0.0/24, joined by a bridge in a namespace of its own. Nothing
// touches the test process's own namespace, and nothing has an uplink.
type lab struct {
	t     *testing.T
	sw    string
	hosts []string
	roots []string
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables")
	}
	name := fmt.Sprintf("knt%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns unusable: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", name).Run()
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T, n int) *lab {
	needRoot(t)
	l := &lab{t: t, sw: fmt.Sprintf("knt%d-%s-sw", os.Getpid(), shortName(t))}
	add := func(ns string) {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
		// A plain host: no forwarding, no bridge netfilter; no IPv6, whose
		// address states change on their own and would make snapshots flaky.
		err := in(ns, func() error {
			for _, kv := range [][2]string{{"ipv4/ip_forward", "0"}, {"bridge/bridge-nf-call-iptables", "0"},
				{"bridge/bridge-nf-call-ip6tables", "0"}, {"ipv6/conf/all/disable_ipv6", "1"}, {"ipv6/conf/default/disable_ipv6", "1"}} {
				if err := os.WriteFile("/proc/sys/net/"+kv[0], []byte(kv[1]), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	add(l.sw)
	sh(t, "ip", "-n", l.sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", l.sw, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("knt%d-%s-h%d", os.Getpid(), shortName(t), i)
		add(ns)
		port := fmt.Sprintf("p%d", i)
		sh(t, "ip", "-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		sh(t, "ip", "-n", l.sw, "link", "set", port, "master", "br0", "up")
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("172.31.0.%d/24", i+2), "dev", "eth0")
		sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		l.hosts = append(l.hosts, ns)
		l.roots = append(l.roots, t.TempDir())
	}
	return l
}

// shortName keeps namespace names short and unique per test.
func shortName(t *testing.T) string {
	return fmt.Sprintf("%x", uint16(len(t.Name())*31+int(t.Name()[len(t.Name())-1])))
}

// in runs fn on an OS thread switched into namespace ns. The thread is
// never unlocked, so the runtime discards it afterwards instead of reusing
// it in the wrong namespace.
func in(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// spec is the spec of host i of the lab.
func (l *lab) spec(i int, mode NetworkMode) *Spec {
	node := func(j int) Node {
		return Node{Name: fmt.Sprintf("h%d", j), Address: netip.MustParseAddr(fmt.Sprintf("172.31.0.%d", j+2)),
			PodCIDR: netip.MustParsePrefix(fmt.Sprintf("10.10.%d.0/24", j+1))}
	}
	s := &Spec{
		Cluster: Cluster{Name: "lab", PodCIDR: netip.MustParsePrefix("10.10.0.0/16"),
			ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), NodeCIDRMask: 24, Network: mode},
		Self: node(i),
	}
	for j := range l.hosts {
		if j != i {
			s.Peers = append(s.Peers, node(j))
		}
	}
	return s
}

// apply runs the network phases on host i and returns the changes made.
func (l *lab) apply(i int, s *Spec, tweak func(*Host)) ([]Change, error) {
	var cs []Change
	err := in(l.hosts[i], func() error {
		h, err := NewLinuxHost(l.roots[i])
		if err != nil {
			return err
		}
		if tweak != nil {
			tweak(h)
		}
		cs, err = (&Runner{Phases: NetworkPhases()}).Apply(context.Background(), s, h)
		return err
	})
	return cs, err
}

func (l *lab) reset(i int) error {
	return in(l.hosts[i], func() error {
		h, err := NewLinuxHost(l.roots[i])
		if err != nil {
			return err
		}
		_, err = Reset(context.Background(), h, ResetOptions{Phases: NetworkPhases()})
		return err
	})
}

var (
	generated = regexp.MustCompile(`(?m)^#.*\n`)
	counters  = regexp.MustCompile(` \[\d+:\d+\]`)
)

// snapshot renders what the network phases may touch on host i.
func (l *lab) snapshot(i int) string {
	ns := l.hosts[i]
	var b strings.Builder
	b.WriteString(sh(l.t, "ip", "-n", ns, "-d", "link"))
	b.WriteString(sh(l.t, "ip", "-n", ns, "addr"))
	b.WriteString(sh(l.t, "ip", "-n", ns, "route", "show", "table", "all"))
	b.WriteString(sh(l.t, "ip", "-n", ns, "neigh", "show", "nud", "permanent"))
	b.WriteString(normaliseIPTables(sh(l.t, "ip", "netns", "exec", ns, "iptables-save")))
	err := in(ns, func() error {
		for _, s := range kernelSysctls() {
			v, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(s.Name, ".", "/")))
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s = %s", s.Name, v)
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	filepath.WalkDir(l.roots[i], func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fmt.Fprintf(&b, "file %s\n", p)
		}
		return nil
	})
	return b.String()
}

// normaliseIPTables drops comments and counters, and tables holding only
// empty built-in chains with an ACCEPT policy: iptables-save prints such a
// table once anything has loaded it, though it equals no table at all.
func normaliseIPTables(s string) string {
	s = counters.ReplaceAllString(generated.ReplaceAllString(s, ""), "")
	var out strings.Builder
	for _, tbl := range strings.SplitAfter(s, "COMMIT\n") {
		empty := true
		for _, line := range strings.Split(strings.TrimSpace(tbl), "\n") {
			if line == "" || line == "COMMIT" || strings.HasPrefix(line, "*") {
				continue
			}
			if !(strings.HasPrefix(line, ":") && strings.HasSuffix(line, " ACCEPT")) {
				empty = false
			}
		}
		if !empty {
			out.WriteString(tbl)
		}
	}
	return out.String()
}

// connect proves that pod-range traffic flows from host i's cbr0 address to
// host j's: a TCP connection from one to the other, across the namespaces.
func (l *lab) connect(t *testing.T, i, j int, mode NetworkMode) {
	t.Helper()
	src := l.spec(i, mode).Self.BridgeAddr().Addr()
	dst := l.spec(j, mode).Self.BridgeAddr().Addr()
	var ln net.Listener
	if err := in(l.hosts[j], func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dst.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("pong"))
			c.Close()
		}
	}()
	err := in(l.hosts[i], func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IP(src.AsSlice())}, Timeout: 3 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || string(buf) != "pong" {
			return fmt.Errorf("read %q: %v", buf, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s (%s) -> %s (%s): %v", l.hosts[i], src, l.hosts[j], dst, err)
	}
	if ping, err := exec.LookPath("ping"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", l.hosts[i], ping, "-c1", "-W2", "-I", src.String(), dst.String()).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s -> %s: %v: %s", src, dst, err, out)
		}
	}
}

func TestNetnsPodNetwork(t *testing.T) {
	for _, mode := range []NetworkMode{Routed, VXLAN} {
		t.Run(string(mode), func(t *testing.T) {
			l := newLab(t, 3)
			before := make([]string, 3)
			for i := range l.hosts {
				before[i] = l.snapshot(i)
			}
			for i := range l.hosts {
				if _, err := l.apply(i, l.spec(i, mode), nil); err != nil {
					t.Fatalf("apply %s: %v", l.hosts[i], err)
				}
			}
			for i := range l.hosts {
				for j := range l.hosts {
					if i != j {
						l.connect(t, i, j, mode)
					}
				}
			}
			for i := range l.hosts {
				if cs, err := l.apply(i, l.spec(i, mode), nil); err != nil || len(cs) != 0 {
					t.Errorf("second apply on %s: %v %v", l.hosts[i], cs, err)
				}
			}
			if t.Failed() {
				t.Logf("state of %s:\n%s", l.hosts[0], l.snapshot(0))
			}
			for i := range l.hosts {
				if err := l.reset(i); err != nil {
					t.Errorf("reset %s: %v", l.hosts[i], err)
				}
				if after := l.snapshot(i); after != before[i] {
					t.Errorf("%s after reset:\n%s\nbefore init:\n%s", l.hosts[i], after, before[i])
				}
			}
		})
	}
}

func TestNetnsUpdatePeers(t *testing.T) {
	l := newLab(t, 3)
	// h0 first knows only h1, then h1 leaves and h2 joins.
	s := l.spec(0, VXLAN)
	s.Peers = s.Peers[:1]
	if _, err := l.apply(0, s, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if _, err := l.apply(i, l.spec(i, VXLAN), nil); err != nil {
			t.Fatal(err)
		}
	}
	l.connect(t, 0, 1, VXLAN)
	s.Peers = l.spec(0, VXLAN).Peers[1:]
	err := in(l.hosts[0], func() error {
		h, err := NewLinuxHost(l.roots[0])
		if err != nil {
			return err
		}
		_, err = UpdatePeers(context.Background(), s, h, nil, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	l.connect(t, 0, 2, VXLAN)
	snap := l.snapshot(0)
	if strings.Contains(snap, "10.10.2.0") {
		t.Errorf("departed h1 still routed:\n%s", snap)
	}
}

// TestNetnsBadInput checks that refused runs leave the host as it was.
func TestNetnsBadInput(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*lab)
		tweak func(*Host)
		mode  NetworkMode
		want  string
	}{
		{"route in pod range", func(l *lab) {
			sh(l.t, "ip", "-n", l.hosts[0], "route", "add", "10.10.9.0/24", "via", "172.31.0.1")
		}, nil, Routed, "conflicts with existing host route 10.10.9.0/24 via 172.31.0.1 dev eth0"},
		{"missing kernel feature", nil, func(h *Host) { h.Modules = withoutModule{h.Modules, "vxlan"} },
			VXLAN, "kernel feature vxlan is missing"},
		{"no permission", nil, nil, VXLAN, "Permission denied (you must be root)"},
		{"failure midway rolls back", nil, func(h *Host) { h.Net = failRoutes{h.Net} }, Routed, "add route 10.10.2.0/24 via 172.31.0.3 proto knode: injected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, 2)
			if tt.setup != nil {
				tt.setup(l)
			}
			before := l.snapshot(0)
			var err error
			if tt.name == "no permission" {
				err = in(l.hosts[0], func() error {
					if err := dropNetAdmin(); err != nil {
						return err
					}
					h, err := NewLinuxHost(l.roots[0])
					if err != nil {
						return err
					}
					_, err = (&Runner{Phases: NetworkPhases()}).Apply(context.Background(), l.spec(0, tt.mode), h)
					return err
				})
			} else {
				_, err = l.apply(0, l.spec(0, tt.mode), tt.tweak)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			t.Logf("error: %v", err)
			if after := l.snapshot(0); after != before {
				t.Errorf("host changed:\n%s\nbefore:\n%s", after, before)
			}
		})
	}
}

// failRoutes makes adding routes fail, after the kernel, bridge and
// earlier changes have been made for real.
type failRoutes struct{ Netlink }

func (failRoutes) AddRoute(Route) error { return errors.New("injected") }

// withoutModule hides one kernel feature.
type withoutModule struct {
	Modules
	name string
}

func (w withoutModule) Loaded(n string) bool    { return n != w.name && w.Modules.Loaded(n) }
func (w withoutModule) Available(n string) bool { return n != w.name && w.Modules.Available(n) }

// dropNetAdmin removes CAP_NET_ADMIN from the calling thread, and from the
// bounding set so that commands it runs lack it too.
func dropNetAdmin() error {
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_NET_ADMIN, 0, 0, 0); err != nil {
		return fmt.Errorf("drop bounding CAP_NET_ADMIN: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	data[0].Permitted &^= 1 << unix.CAP_NET_ADMIN
	data[0].Inheritable &^= 1 << unix.CAP_NET_ADMIN
	return unix.Capset(&hdr, &data[0])
}
