package agent

import (
	"context"
	"io"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
	"knode.dev/knode/kubeapi/kubeapitest"
	"knode.dev/knode/pki"
)

// moveAddr replaces the fake host's eth0 address from with to, as a new
// DHCP lease does.
func moveAddr(t *testing.T, f *hostpreptest.Host, from, to string) {
	t.Helper()
	if err := f.Net.DelAddr(hostprep.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix(from + "/8")}); err != nil {
		t.Fatal(err)
	}
	if err := f.Net.AddAddr(hostprep.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix(to + "/8")}); err != nil {
		t.Fatal(err)
	}
}

// certIPs lists the addresses of the certificate at name on f.
func certIPs(f *hostpreptest.Host, name string) []string {
	b, _ := f.Files.ReadFile(path.Join(hostprep.PKIDir, name+".crt"))
	cert, err := pki.ParseCert(b)
	if err != nil {
		return nil
	}
	var out []string
	for _, ip := range cert.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// A worker's address changes under its running agent, with no command run:
// the agent stops itself (knode.service starts it again), the restarted
// agent claims the new address, the allocator moves the decision, the host
// follows (the kubelet's --node-ip, its serving certificate signed by a
// master for the new address), the master routes the worker's subnet
// through the new address, and the worker's own identity records it.
func TestAddressChangeFollows(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.ips = map[string]string{"n01": "127.0.0.2"}
	tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	api := kubeapitest.New(t)
	n00, w := tc.live()["n00"], tc.live()["n01"]
	m := attachHost(t, n00, netip.MustParsePrefix("127.0.0.0/8"), api)
	// What join leaves on the worker: its certificates (signed by n00) and units.
	f := fakeHost(w, netip.MustParsePrefix("127.0.0.0/8"))
	f.Probe.F.Now = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	creds, err := w.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := w.HostSpec(creds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&hostprep.Runner{Only: []string{hostprep.PhasePKI, hostprep.PhaseUnits}, Out: io.Discard}).Apply(ctx, &spec, f.Host()); err != nil {
		t.Fatal(err)
	}
	connectHost(t, w, f, api)
	waitRoutes(t, m, "n00's route to n01", func() []string { return peerRoutes(n00, "n01") })
	kubeletUnit := path.Join(hostprep.SystemdUnitDir, "kubelet.service")
	if b, _ := f.Files.ReadFile(kubeletUnit); !strings.Contains(string(b), "--node-ip=127.0.0.2") {
		t.Fatalf("kubelet unit as join wrote it:\n%s", b)
	}
	before := n00.Snapshot().Assignments["n01"]

	moveAddr(t, f, "127.0.0.2", "127.0.0.5")
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not stop when its address left the host")
	}
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Fatalf("the agent's stop reason %v, want its lost address named", err)
	}
	// knode.service starts it again; its host is as join left it.
	tc.mu.Lock()
	tc.ips["n01"] = "127.0.0.5"
	tc.mu.Unlock()
	w2, err := tc.start("n01", []string{"n00"}, nil, tc.token, true)
	if err != nil {
		t.Fatal(err)
	}
	restartHost(w2, f, api)
	waitFor(t, 15*time.Second, "the decision at the new address", func() bool {
		as := n00.Snapshot().Assignments["n01"]
		return as.Addr == netip.MustParseAddr("127.0.0.5") && as.PodCIDR == before.PodCIDR && as.SignKey == before.SignKey
	})
	waitFor(t, 15*time.Second, "n01's kubelet at the new address", func() bool {
		b, _ := f.Files.ReadFile(kubeletUnit)
		return strings.Contains(string(b), "--node-ip=127.0.0.5")
	})
	if ips := certIPs(f, "kubelet-serving"); !slices.Equal(ips, []string{"127.0.0.5"}) {
		t.Errorf("kubelet serving certificate for %v, want [127.0.0.5]", ips)
	}
	waitRoutes(t, m, "n00's route to n01 through its new address", func() []string { return peerRoutes(n00, "n01") })
	if got := knodeRoutes(m); !slices.Equal(got, []string{before.PodCIDR.String() + " via 127.0.0.5"}) {
		t.Errorf("n00's routes %v", got)
	}
	waitFor(t, 10*time.Second, "n01's identity to record the new address", func() bool {
		var id datadir.Identity
		return tc.dir("n01").ReadJSON(datadir.NodeFile, &id) == nil && id.HostAddr == netip.MustParseAddr("127.0.0.5")
	})
	tc.waitConverged(10*time.Second, 2)
}

// An address given with --advertise or --bind that left the host is
// forgotten, so that the restarted agent does not advertise it again; other
// addresses and the ports stay.
func TestForgetAddr(t *testing.T) {
	gone := netip.MustParseAddr("192.0.2.7")
	for _, tt := range []struct{ bind, adv, wantBind, wantAdv string }{
		{"192.0.2.7:7946", "", "0.0.0.0:7946", ""},
		{"0.0.0.0:7000", "192.0.2.7:7000", "0.0.0.0:7000", ""},
		{"0.0.0.0:7946", "192.0.2.8:7946", "0.0.0.0:7946", "192.0.2.8:7946"},
	} {
		id := datadir.Identity{Bind: netip.MustParseAddrPort(tt.bind)}
		if tt.adv != "" {
			id.Advertise = netip.MustParseAddrPort(tt.adv)
		}
		forgetAddr(&id, gone)
		adv := ""
		if id.Advertise.IsValid() {
			adv = id.Advertise.String()
		}
		if id.Bind.String() != tt.wantBind || adv != tt.wantAdv {
			t.Errorf("bind %s advertise %q -> %s %q, want %s %q", tt.bind, tt.adv, id.Bind, adv, tt.wantBind, tt.wantAdv)
		}
	}
}
