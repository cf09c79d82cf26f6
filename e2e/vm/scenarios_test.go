//go:build vme2e

package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestVMSmoke (make vm-smoke): 1 master + 1 worker on real kernels to Ready, the host facts
// knode depends on there (cgroup v2 with the systemd driver, its modules, knode.service at
// boot), then `knode reset` on both leaves each VM as it was before knode came.
func TestVMSmoke(t *testing.T) {
	ctx := t.Context()
	vms := startVMs(t, 2)
	before := snapshots(t, vms)

	t0 := time.Now()
	form(t, vms)
	waitReady(t, vms[0], vms)
	timing(t, "init start to 2 nodes Ready", time.Since(t0))
	checkRealHost(t, vms)
	for _, v := range vms {
		if mib, err := v.Memory(ctx); err == nil {
			t.Logf("MEMORY %s qemu RSS with a Ready node: %d MiB", v.Name, mib)
		}
	}

	// The worker first: a master's reset leaves etcd, which a lone master cannot.
	for _, v := range []*VM{vms[1], vms[0]} {
		t1 := time.Now()
		if out, err := v.Sh(ctx, "knode reset 2>&1"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		timing(t, v.Name+": knode reset", time.Since(t1))
	}
	after := snapshots(t, vms)
	for i, v := range vms {
		if d := lineDiff(before[i], after[i]); d != "" {
			t.Errorf("%s: host after knode reset differs from before the cluster (- before, + after):\n%s", v.Name, d)
		}
	}
}

// TestVMRebootWorker: a worker rebooted from inside comes back Ready with no command run:
// knode.service starts at boot, the node keeps its pod subnet, and the routes between the
// nodes' pod subnets are there again on both sides.
func TestVMRebootWorker(t *testing.T) {
	ctx := t.Context()
	vms := startVMs(t, 2)
	form(t, vms)
	ready := waitReady(t, vms[0], vms)
	master, worker := vms[0], vms[1]
	cidr := ready[worker.Name].PodCIDR
	checkRoutes(t, vms, ready)

	t0 := time.Now()
	if err := worker.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	timing(t, worker.Name+": reboot to ssh", time.Since(t0))
	// Ready again means a new kubelet heartbeat after the boot: wait for NotReady first only
	// if the reboot was long enough for the node controller to see it; either way the node
	// must be Ready with the same subnet and the kubelet must have started in this boot.
	waitFor(t, worker.Name+": kubelet and knode active in this boot", readyTimeout(t), func() (bool, string) {
		out, err := worker.Sh(ctx, "systemctl is-active knode kubelet containerd")
		return err == nil, strings.Join(strings.Fields(out), " ")
	})
	again := waitReady(t, master, vms)
	timing(t, worker.Name+": reboot to Ready", time.Since(t0))
	if got := again[worker.Name].PodCIDR; got != cidr {
		t.Errorf("%s: pod CIDR %s after the reboot, %s before", worker.Name, got, cidr)
	}
	checkRoutes(t, vms, again)
}

// checkRealHost checks what a real Debian 12 host gives knode and what knode must then do.
func checkRealHost(t *testing.T, vms []*VM) {
	t.Helper()
	ctx := t.Context()
	for _, v := range vms {
		for _, c := range []struct{ what, script, want string }{
			{"cgroup v2 at /sys/fs/cgroup", "stat -fc %T /sys/fs/cgroup", "cgroup2fs"},
			{"the kubelet's cgroup driver", "sed -n 's/^cgroupDriver: *//p' /var/lib/kubelet/config.yaml", "systemd"},
			{"kubelet pods under systemd's kubepods.slice", "test -d /sys/fs/cgroup/kubepods.slice && echo yes", "yes"},
			{"knode.service enabled at boot", "systemctl is-enabled knode", "enabled"},
			{"br_netfilter loaded", "test -d /sys/module/br_netfilter && echo yes", "yes"},
			{"overlay loaded", "test -d /sys/module/overlay && echo yes", "yes"},
		} {
			out, err := v.Sh(ctx, c.script)
			if got := strings.TrimSpace(out); err != nil || got != c.want {
				t.Errorf("%s: %s: got %q, want %q (%v)", v.Name, c.what, got, c.want, err)
			}
		}
	}
}

// checkRoutes checks that each VM routes every other node's pod CIDR via that node's address.
func checkRoutes(t *testing.T, vms []*VM, ready map[string]node) {
	t.Helper()
	ctx := t.Context()
	for _, v := range vms {
		for _, peer := range vms {
			if peer == v {
				continue
			}
			cidr := ready[peer.Name].PodCIDR
			var routes []struct{ Dst, Gateway, Dev string }
			waitFor(t, fmt.Sprintf("%s: route to %s's pod CIDR %s via %s", v.Name, peer.Name, cidr, peer.IP), 2*time.Minute, func() (bool, string) {
				out, err := v.Sh(ctx, "ip -j route show "+cidr)
				if err != nil {
					return false, err.Error()
				}
				if err := json.Unmarshal([]byte(out), &routes); err != nil {
					return false, err.Error()
				}
				for _, r := range routes {
					if r.Gateway == peer.IP {
						return true, ""
					}
				}
				return false, fmt.Sprintf("routes: %+v", routes)
			})
		}
		// Its own subnet is on cbr0, with the subnet's first address.
		own := netip.MustParsePrefix(ready[v.Name].PodCIDR)
		out, err := v.Sh(ctx, "ip -br addr show cbr0")
		if want := own.Addr().Next().String() + "/"; err != nil || !strings.Contains(out, want) {
			t.Errorf("%s: cbr0 %q, want %s%d (%v)", v.Name, strings.TrimSpace(out), want, own.Bits(), err)
		}
	}
}

func snapshots(t *testing.T, vms []*VM) []string {
	t.Helper()
	s := make([]string, len(vms))
	for i, v := range vms {
		var err error
		if s[i], err = v.Snapshot(context.WithoutCancel(t.Context())); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// lineDiff lists the lines only in a ("-") and only in b ("+"), in order; "" when equal.
func lineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if cb[l] > 0 {
			cb[l]--
			continue
		}
		out = append(out, "- "+l)
	}
	for _, l := range strings.Split(b, "\n") {
		if ca[l] > 0 {
			ca[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	return strings.Join(out, "\n")
}
