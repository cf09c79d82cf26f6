package agent

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// A node whose host was configured for one subnet and that now holds another
// (moved after a partition healed) gets the new one on cbr0, in the CNI range
// and in the kubelet's configuration, and its kubelet restarts; its pods in
// the old subnet are removed (the kubelet creates them again in the new one);
// then it waits to register its Node again. A second look changes nothing.
func TestMovedNodeFollows(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	w := tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	f := hostpreptest.New()
	h := &HostOptions{Host: f.Host(), Out: io.Discard}
	w.SetHost(h)
	spec, err := w.HostSpec(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Net.AddUplink("eth0", 1500, netip.PrefixFrom(spec.Self.Address, 8))
	old := spec
	old.Self.PodCIDR = netip.MustParsePrefix("10.10.9.0/24")
	if _, err := (&hostprep.Runner{Only: movePhases, Out: io.Discard}).Apply(context.Background(), &old, f.Host()); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.id.HostPodCIDR = old.Self.PodCIDR
	w.mu.Unlock()
	restarts := len(f.Systemd.Restarts)
	// A pod of the old subnet, and a host-network pod (no pod address).
	f.Pods.Running = []string{"default/web", "kube-system/kube-proxy-x"}
	f.Pods.IPs = map[string]netip.Addr{"default/web": netip.MustParseAddr("10.10.9.7")}

	if err := w.followMove(context.Background(), spec, h); err != nil {
		t.Fatal(err)
	}
	gw := netip.PrefixFrom(spec.Self.PodCIDR.Addr().Next(), spec.Self.PodCIDR.Bits()).String()
	if net := f.Net.String(); !strings.Contains(net, "addr "+gw+" dev cbr0") || strings.Contains(net, "10.10.9.1/24") {
		t.Errorf("cbr0 not moved to %s:\n%s", gw, net)
	}
	for file, want := range map[string]string{hostprep.CNIConfPath: spec.Self.PodCIDR.String(), hostprep.KubeletConfigPath: "podCIDR: " + spec.Self.PodCIDR.String()} {
		b, _ := f.Files.ReadFile(file)
		if !strings.Contains(string(b), want) || strings.Contains(string(b), "10.10.9.0/24") {
			t.Errorf("%s does not hold %q only:\n%s", file, want, b)
		}
	}
	if !slices.Contains(f.Systemd.Restarts[restarts:], "kubelet.service") {
		t.Errorf("kubelet not restarted: %v", f.Systemd.Restarts[restarts:])
	}
	if got := f.Pods.Pods(); !slices.Equal(got, []string{"kube-system/kube-proxy-x"}) {
		t.Errorf("pods left after the move: %v, want only the host-network one", got)
	}
	w.mu.Lock()
	saved, moved := w.id.HostPodCIDR, w.moved
	w.mu.Unlock()
	if saved != spec.Self.PodCIDR || moved.IsZero() {
		t.Errorf("host subnet saved as %s, waiting to register: %v", saved, !moved.IsZero())
	}
	before := f.String()
	if err := w.followMove(context.Background(), spec, h); err != nil || f.String() != before {
		t.Errorf("a second look changed the host (%v)", err)
	}
}
