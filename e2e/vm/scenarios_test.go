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
	waitReady(t, vms)
	timing(t, "init start to 2 nodes Ready", time.Since(t0))
	checkRealHost(t, vms)
	for _, v := range vms {
		if mib, err := v.Memory(ctx); err == nil {
			t.Logf("MEMORY %s qemu RSS with a Ready node: %d MiB", v.Name, mib)
		}
	}

	checkReset(t, vms, before)
}

// TestVMCluster: the scenarios on one cluster of 1 master + 2 workers, in order, as
// subtests (under TCG forming a cluster takes most of a run, so they share one; each can be
// picked alone with -run 'TestVMCluster/NAME', and each leaves the cluster healthy for the
// next). The second worker, vm3, has two interfaces: its default route goes out on a second
// network (eth1) that the other nodes are not on, so it must be known to the cluster by its
// address on the first (checkAddresses).
//
//   - workload: the container lab's scenario 2 (pod to pod across nodes, Service IP, DNS,
//     NodePort, on vm3's second network too), the image imported on the master only
//   - reboot-worker: vm3 rebooted from inside comes back Ready with no command run, with its
//     pod subnet, its address on the cluster's network, and the routes between the nodes'
//     subnets on every side
//   - reboot-master: the same for the master; then the whole cluster is healthy (knode
//     status) and, when the workload ran, it answers again as at first
//   - reset: `knode reset` on the worker, then the master, leaves each VM as it was before
//     knode came (links, routes, iptables, sysctls, units, files under /etc and /var/lib)
func TestVMCluster(t *testing.T) {
	vms := startVMs(t, 3, 3)
	before := snapshots(t, vms)
	t0 := time.Now()
	form(t, vms)
	ready := waitReady(t, vms)
	timing(t, "init start to 3 nodes Ready", time.Since(t0))
	checkRoutes(t, vms, ready)
	checkAddresses(t, vms, ready)
	master, worker := vms[0], vms[2]

	deployed := false
	t.Run("workload", func(t *testing.T) {
		deployWorkload(t, vms)
		deployed = true
		checkWorkload(t, vms)
	})
	t.Run("reboot-worker", func(t *testing.T) { checkReboot(t, vms, worker, ready) })
	t.Run("reboot-master", func(t *testing.T) {
		checkReboot(t, vms, master, ready)
		t1 := time.Now()
		for _, v := range vms {
			if out, err := v.Sh(t.Context(), "knode status --wait --timeout "+readyTimeout(t).String()+" 2>&1"); err != nil {
				t.Errorf("%s: knode status after the master's reboot: %v\n%s", v.Name, err, out)
			}
		}
		timing(t, "knode status healthy on every VM after the master's reboot", time.Since(t1))
		if deployed {
			checkWorkload(t, vms)
		}
	})
	t.Run("reset", func(t *testing.T) { checkReset(t, vms, before) })
}

// checkReboot reboots v from inside (systemctl reboot) and checks that it comes back with no
// command run: knode, containerd and the kubelet active in the new boot, its Node Ready with a
// lease the new boot's kubelet renewed, every node's pod CIDR as before, the routes between
// the subnets on every VM, and every node known by its cluster address (checkAddresses).
func checkReboot(t *testing.T, vms []*VM, v *VM, ready map[string]node) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Now()
	if err := v.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	timing(t, v.Name+": reboot to ssh", time.Since(t0))
	waitFor(t, v.Name+": knode, containerd and kubelet active in this boot", readyTimeout(t), func() (bool, string) {
		out, err := v.Sh(ctx, "systemctl is-active knode containerd kubelet")
		return err == nil, strings.Join(strings.Fields(out), " ")
	})
	timing(t, v.Name+": reboot to knode, containerd and kubelet active", time.Since(t0))
	waitRenewed(t, v, t0)
	again := waitReady(t, vms)
	timing(t, v.Name+": reboot to Ready", time.Since(t0))
	for _, n := range vms {
		if got, want := again[n.Name].PodCIDR, ready[n.Name].PodCIDR; got != want {
			t.Errorf("%s: pod CIDR %s after %s's reboot, %s before", n.Name, got, v.Name, want)
		}
	}
	checkRoutes(t, vms, again)
	timing(t, v.Name+": reboot to routes back on every VM", time.Since(t0))
	checkAddresses(t, vms, again)
}

// checkAddresses checks that every node is known by its address on the cluster's network,
// the one the others reach it on: the kubelet's InternalIP and the address gossip advertises
// (knode status on the master). On a VM with two interfaces, whose default route and first
// private address are on the other network, it checks that they are, so that the checks
// above test what they mean to.
func checkAddresses(t *testing.T, vms []*VM, ready map[string]node) {
	t.Helper()
	ctx := t.Context()
	out, err := vms[0].Sh(ctx, "knode status --json")
	if err != nil && out == "" {
		t.Fatalf("knode status --json on %s: %v", vms[0].Name, err)
	}
	var st struct {
		Members []struct{ Name, Address string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("knode status --json on %s: %v: %.300s", vms[0].Name, err, out)
	}
	gossiped := map[string]string{}
	for _, m := range st.Members {
		gossiped[m.Name] = m.Address
	}
	for _, v := range vms {
		if got := ready[v.Name].InternalIP; got != v.IP {
			t.Errorf("%s: Node InternalIP %q, want its cluster address %s", v.Name, got, v.IP)
		}
		if got, want := gossiped[v.Name], v.IP+":7946"; got != want {
			t.Errorf("%s: gossip address %q in the master's knode status, want %s", v.Name, got, want)
		}
		if v.Front == "" {
			continue
		}
		route, err := v.Sh(ctx, "ip -j route show default")
		var routes []struct{ Gateway, Dev string }
		if err == nil {
			err = json.Unmarshal([]byte(route), &routes)
		}
		if err != nil || len(routes) != 1 || routes[0].Dev != "eth1" {
			t.Errorf("%s: default route %s (%v), want one via eth1, its second network", v.Name, strings.TrimSpace(route), err)
		}
	}
}

// waitRenewed waits until v's node lease (kube-node-lease) was renewed after since: the
// kubelet of a boot that began after since heartbeats again. (A Node may still read Ready
// from before a short reboot; its lease cannot be renewed by a kubelet that is not running.)
func waitRenewed(t *testing.T, v *VM, since time.Time) {
	t.Helper()
	waitFor(t, v.Name+": node lease renewed after "+since.Format(time.TimeOnly), readyTimeout(t), func() (bool, string) {
		var lease struct {
			Spec struct {
				RenewTime time.Time `json:"renewTime"`
			}
		}
		if err := get(t.Context(), "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"+v.Name, &lease); err != nil {
			return false, err.Error()
		}
		return lease.Spec.RenewTime.After(since), "renewed at " + lease.Spec.RenewTime.Format(time.TimeOnly)
	})
}

// checkReset runs `knode reset` on every VM, workers first (a master's reset leaves etcd,
// which a lone master cannot), and compares each VM with its snapshot from before the cluster.
func checkReset(t *testing.T, vms []*VM, before []string) {
	t.Helper()
	ctx := t.Context()
	for i := len(vms) - 1; i >= 0; i-- {
		v := vms[i]
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
