package agent

import (
	"fmt"
	"io"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/kubeapi/kubeapitest"
)

// Tier-1 tests of what an agent does to its host and to the cluster's
// objects: real agents on loopback, the host a hostpreptest fake, the
// apiserver a kubeapitest fake.

// Users of the fake apiserver's clients, by the kubeconfig they stand for.
const (
	adminUser      = "kubernetes-admin"
	superAdminUser = "kubernetes-super-admin"
)

// attachHost gives a an in-memory host as init or join leaves it (an uplink
// eth0 holding the node's address on uplink, a master's control plane in
// place), marks it configured and connects it: the host loop restores the
// boot phases and keeps the peers' routes from then on. The cluster chores
// reach api.
func attachHost(t *testing.T, a *Agent, uplink netip.Prefix, api *kubeapitest.Server) *hostpreptest.Host {
	t.Helper()
	f := hostpreptest.New()
	f.Modules.Sysctl = f.Sysctl
	as, _ := a.Assignment()
	f.Net.AddUplink("eth0", 1500, netip.PrefixFrom(as.Addr, uplink.Bits()))
	if as.Seat >= 0 { // becomeMaster finds the control plane there
		f.Files.WriteFile(path.Join(hostprep.ManifestsDir, "kube-apiserver.yaml"), []byte("in place"), 0o600)
	}
	h := &HostOptions{Host: f.Host(), Out: io.Discard, KubeAPI: func(kubeconfig string) (*kubeapi.Client, error) {
		switch kubeconfig {
		case hostprep.AdminKubeconfig:
			return api.Client(adminUser)
		case hostprep.SuperAdminKubeconfig:
			return api.Client(superAdminUser)
		}
		return nil, fmt.Errorf("no client for %s in this test", kubeconfig)
	}}
	if err := a.MarkHost(); err != nil {
		t.Fatal(err)
	}
	a.SetHost(h)
	a.kickHost()
	return f
}

// knodeRoutes lists the fake host's routes that knode owns, as "dst via gw".
func knodeRoutes(f *hostpreptest.Host) []string {
	rs, _ := f.Net.Routes()
	var out []string
	for _, r := range rs {
		if r.Proto == hostprep.RouteProto {
			out = append(out, r.Dst.String()+" via "+r.Gw.String())
		}
	}
	slices.Sort(out)
	return out
}

// peerRoutes is what knodeRoutes should list on self: a route to each
// other named node's subnet through its address.
func peerRoutes(self *Agent, names ...string) []string {
	snap := self.Snapshot()
	var out []string
	for _, n := range names {
		as := snap.Assignments[n]
		out = append(out, as.PodCIDR.String()+" via "+as.Addr.String())
	}
	slices.Sort(out)
	return out
}

func waitRoutes(t *testing.T, f *hostpreptest.Host, what string, want func() []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(knodeRoutes(f), want()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: routes %q, want %q", what, knodeRoutes(f), want())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The host loop restores the boot phases on a configured node, routes every
// peer's subnet through the peer, follows joins and removals, and keeps
// the route of a peer that is only dead.
func TestHostRoutesPeers(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.ips = map[string]string{"n01": "127.0.0.2", "n02": "127.0.0.3", "n03": "127.0.0.4"}
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	n00 := tc.live()["n00"]
	f := attachHost(t, n00, netip.MustParsePrefix("127.0.0.0/8"), kubeapitest.New(t))

	waitRoutes(t, f, "routes to n01 and n02", func() []string { return peerRoutes(n00, "n01", "n02") })
	self, _ := n00.Assignment()
	if l, err := f.Net.LinkByName(hostprep.BridgeName); err != nil || !l.Up {
		t.Errorf("boot phases: bridge %s %+v, %v", hostprep.BridgeName, l, err)
	}
	if !strings.Contains(f.Net.String(), netip.PrefixFrom(self.PodCIDR.Addr().Next(), self.PodCIDR.Bits()).String()) {
		t.Errorf("the bridge does not hold the first address of %s:\n%s", self.PodCIDR, f.Net.String())
	}

	tc.join("n03", "n00")
	waitRoutes(t, f, "a route to the joiner n03", func() []string { return peerRoutes(n00, "n01", "n02", "n03") })

	tc.kill("n02") // dead, not removed: its route stays, it may come back
	waitFor(t, 10*time.Second, "n02 seen dead", func() bool { return memberState(n00, "n02") == "dead" })
	if got, want := knodeRoutes(f), peerRoutes(n00, "n01", "n02", "n03"); !slices.Equal(got, want) {
		t.Errorf("routes after n02 died: %q, want %q", got, want)
	}

	leaver := tc.live()["n01"]
	tc.mu.Lock()
	delete(tc.agents, "n01")
	tc.mu.Unlock()
	if err := leaver.Remove(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, f, "n01's route gone with its removal", func() []string { return peerRoutes(n00, "n02", "n03") })
}

// memberState is name's state as a sees it.
func memberState(a *Agent, name string) string {
	for _, m := range a.Status().Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// A peer the host cannot route (in routed mode, an address off this
// node's segment) gets no route, and does not keep the others from theirs.
func TestBadPeerDoesNotBlockOthers(t *testing.T) {
	plan := testPlan(1)
	plan.Network = string(hostprep.Routed)
	tc := newTestCluster(t, plan)
	tc.ips = map[string]string{"n01": "127.0.0.2", "n02": "127.0.1.3", "n03": "127.0.0.4"}
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	n00 := tc.live()["n00"]
	f := attachHost(t, n00, netip.MustParsePrefix("127.0.0.0/24"), kubeapitest.New(t))
	waitRoutes(t, f, "a route to n01, none to n02", func() []string { return peerRoutes(n00, "n01") })
	tc.join("n03", "n00")
	waitRoutes(t, f, "a route to the joiner n03", func() []string { return peerRoutes(n00, "n01", "n03") })
}
