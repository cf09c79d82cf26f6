package agent

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/gossip"
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

// attachHost gives a an in-memory host as init or join leaves it
// (fakeHost) and connects it (connectHost).
func attachHost(t *testing.T, a *Agent, uplink netip.Prefix, api *kubeapitest.Server) *hostpreptest.Host {
	t.Helper()
	f := fakeHost(a, uplink)
	connectHost(t, a, f, api)
	return f
}

// fakeHost is an in-memory host for a: an uplink eth0 holding the node's
// address on uplink and, on a master, its control plane in place.
func fakeHost(a *Agent, uplink netip.Prefix) *hostpreptest.Host {
	f := hostpreptest.New()
	f.Modules.Sysctl = f.Sysctl
	as, _ := a.Assignment()
	f.Net.AddUplink("eth0", 1500, netip.PrefixFrom(as.Addr, uplink.Bits()))
	if as.Seat >= 0 { // becomeMaster finds the control plane there
		f.Files.WriteFile(path.Join(hostprep.ManifestsDir, "kube-apiserver.yaml"), []byte("in place"), 0o600)
	}
	return f
}

// connectHost marks a configured and connects f: the host loop restores
// the boot phases, keeps the peers' routes and renews certificates from
// then on. The cluster chores reach api.
func connectHost(t *testing.T, a *Agent, f *hostpreptest.Host, api *kubeapitest.Server) {
	t.Helper()
	if err := a.MarkHost(); err != nil {
		t.Fatal(err)
	}
	restartHost(a, f, api)
}

// restartHost connects f to the agent started again on a host that init or
// join configured (knode.service's agent).
func restartHost(a *Agent, f *hostpreptest.Host, api *kubeapitest.Server) {
	h := &HostOptions{Host: f.Host(), Out: io.Discard, KubeAPI: func(kubeconfig string) (*kubeapi.Client, error) {
		switch kubeconfig {
		case hostprep.AdminKubeconfig:
			return api.Client(adminUser)
		case hostprep.SuperAdminKubeconfig:
			return api.Client(superAdminUser)
		}
		return nil, fmt.Errorf("no client for %s in this test", kubeconfig)
	}}
	a.SetHost(h)
	a.kickHost()
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

// The allocator's cluster chores, against a fake apiserver: they wait for
// /readyz, bind admin.conf's group as super-admin, apply the CoreDNS addon
// server-side as "knode", set each Node's podCIDR once its kubelet
// registers it (one refused Node holding up no other), mark masters, and
// delete the Node of a removed node.
func TestClusterChores(t *testing.T) {
	api := kubeapitest.New(t)
	api.SetReady(false)
	tc := newTestCluster(t, testPlan(1))
	tc.ips = map[string]string{"n01": "127.0.0.2", "n02": "127.0.0.3", "n03": "127.0.0.4"}
	n00 := tc.live()["n00"]
	tc.waitConverged(10*time.Second, 1) // its host holds the address its decision binds
	attachHost(t, n00, netip.MustParsePrefix("127.0.0.0/8"), api)

	waitFor(t, 10*time.Second, "the chores asking /readyz", func() bool {
		return slices.Contains(api.Requests(), adminUser+" GET /readyz")
	})
	time.Sleep(2 * choresRetry)
	if got := api.Applied(); len(got) != 0 {
		t.Fatalf("applied %d objects while the apiserver was not ready", len(got))
	}
	api.Register("n00")
	api.SetReady(true)
	cidrSet := func(name string) bool {
		n, _ := api.Node(name)
		return n.Spec.PodCIDR == n00.Snapshot().Assignments[name].PodCIDR.String() && n.Spec.PodCIDR != ""
	}
	waitFor(t, 10*time.Second, "the addon applied, n00 with its podCIDR and marked a master", func() bool {
		n, _ := api.Node("n00")
		_, marked := n.Labels[ControlPlaneRole]
		return len(api.Applied()) == 7 && cidrSet("n00") && marked
	})
	applied := api.Applied()
	if a := applied[0]; a.Path != "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/knode:cluster-admins" || a.User != superAdminUser {
		t.Errorf("first apply: %s as %s, want admin.conf's binding as super-admin", a.Path, a.User)
	}
	for _, a := range applied[1:] {
		if a.User != adminUser || a.FieldManager != kubeapi.FieldManager || !a.Force {
			t.Errorf("%s applied as %s by %q (force %v), want the admin as %q", a.Path, a.User, a.FieldManager, a.Force, kubeapi.FieldManager)
		}
	}
	if applied[6].Path != "/api/v1/namespaces/kube-system/services/kube-dns" {
		t.Errorf("last apply %s, want the kube-dns Service", applied[6].Path)
	}

	// A joiner's podCIDR is set as soon as its kubelet registers its Node.
	tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	time.Sleep(choresRetry) // the chores find no Node yet, and keep looking
	api.Register("n01")
	waitFor(t, 5*time.Second, "n01's podCIDR", func() bool { return cidrSet("n01") })

	// A Node the apiserver refuses to patch holds up no other, and is
	// tried again.
	api.Fail("PATCH /api/v1/nodes/n02", 403)
	tc.join("n02", "n00")
	tc.join("n03", "n00")
	tc.waitConverged(10*time.Second, 4)
	api.Register("n02")
	api.Register("n03")
	waitFor(t, 5*time.Second, "n03's podCIDR while n02's is refused", func() bool { return cidrSet("n03") })
	if cidrSet("n02") {
		t.Fatal("n02's podCIDR set through a refusal")
	}
	api.Fail("PATCH /api/v1/nodes/n02", 0)
	waitFor(t, 15*time.Second, "n02's podCIDR once allowed", func() bool { return cidrSet("n02") })

	// A node removed for good loses its Node object.
	leaver := tc.live()["n01"]
	tc.mu.Lock()
	delete(tc.agents, "n01")
	tc.mu.Unlock()
	if err := leaver.Remove(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "n01's Node deleted", func() bool { return slices.Contains(api.Deleted(), "n01") })
	if _, ok := api.Node("n01"); ok {
		t.Error("n01's Node still there")
	}
	if n, _ := api.Node("n03"); len(n.Labels) != 0 {
		t.Errorf("a worker was marked: %v", n.Labels)
	}
}

// The host loop renews a master's certificates once due, through hostprep
// on its host: every leaf rewritten, the static pods' containers restarted.
func TestHostLoopRenewsCertificates(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	tc := newTestClusterWith(t, testPlan(1), gossip.Fast, func(name string, o *Options) {
		o.CertLifetime, o.Now = time.Minute, clock.Now
	})
	tc.waitConverged(10*time.Second, 1)
	n00 := tc.live()["n00"]
	f := fakeHost(n00, netip.MustParsePrefix("127.0.0.0/8"))
	f.Probe.F.Now = clock.Now()
	spec, err := n00.HostSpec(nil)
	if err != nil {
		t.Fatal(err)
	}
	// What init leaves: the certificates and the static pods that read them.
	if _, err := (&hostprep.Runner{Only: []string{hostprep.PhasePKI, hostprep.PhaseStaticPods}, Out: io.Discard}).Apply(context.Background(), &spec, f.Host()); err != nil {
		t.Fatal(err)
	}
	apiserverCrt := path.Join(hostprep.PKIDir, "apiserver.crt")
	first, _ := f.Files.ReadFile(apiserverCrt)
	sched := hostprep.CertSchedule(&spec, f.Files)
	if len(sched) == 0 {
		t.Fatal("no certificate scheduled")
	}
	// Past the renewal point of every leaf, on both clocks.
	clock.t = sched[len(sched)-1].RenewAt.Add(time.Second)
	f.Probe.F.Now = clock.t

	connectHost(t, n00, f, kubeapitest.New(t))
	want := "kube-system/kube-apiserver-n00"
	waitFor(t, 10*time.Second, "the host loop's renewal restarting "+want, func() bool {
		return slices.Contains(f.Pods.Snapshot(), want)
	})
	renewed, _ := f.Files.ReadFile(apiserverCrt)
	if string(renewed) == string(first) {
		t.Error("apiserver.crt not rewritten")
	}
	for _, d := range hostprep.CertSchedule(&spec, f.Files) {
		if !d.RenewAt.After(clock.Now()) {
			t.Errorf("%s still due after the renewal (at %s)", d.Path, d.RenewAt)
		}
	}
}
