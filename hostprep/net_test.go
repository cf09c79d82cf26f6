package hostprep_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// testSpec is node b of a three-node cluster on 172.31.0.0/24.
func testSpec(mode hostprep.NetworkMode) *hostprep.Spec {
	return &hostprep.Spec{
		Cluster: hostprep.Cluster{Name: "demo", PodCIDR: netip.MustParsePrefix("10.10.0.0/16"),
			ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), NodeCIDRMask: 24, Network: mode},
		Self: hostprep.Node{Name: "b", Address: netip.MustParseAddr("172.31.0.3"), PodCIDR: netip.MustParsePrefix("10.10.2.0/24"), Master: true},
		Peers: []hostprep.Node{
			{Name: "a", Address: netip.MustParseAddr("172.31.0.2"), PodCIDR: netip.MustParsePrefix("10.10.1.0/24")},
			{Name: "c", Address: netip.MustParseAddr("172.31.0.4"), PodCIDR: netip.MustParsePrefix("10.10.3.0/24")},
		},
	}
}

// newNetFake is a fake host with an uplink eth0 172.31.0.3/24 and br_netfilter
// not yet loaded.
func newNetFake() *hostpreptest.Host {
	f := hostpreptest.New()
	f.Net.AddUplink("eth0", 1500, netip.MustParsePrefix("172.31.0.3/24"))
	f.Net.AddHostRoute(hostprep.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("172.31.0.1"), Dev: "eth0"})
	f.Modules.Sysctl = f.Sysctl
	return f
}

func runNet(t *testing.T, s *hostprep.Spec, h *hostprep.Host) []hostprep.Change {
	t.Helper()
	r := &hostprep.Runner{Phases: hostprep.NetworkPhases()}
	cs, err := r.Apply(context.Background(), s, h)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return cs
}

func TestNetworkPhases(t *testing.T) {
	tests := []struct {
		mode hostprep.NetworkMode
		net  string // expected ## net section
	}{
		{hostprep.Routed, `addr 10.10.2.1/24 dev cbr0
addr 172.31.0.3/24 dev eth0
link cbr0 bridge mtu 1500 up
link eth0 device mtu 1500 up
link lo device mtu 65536 up
route 0.0.0.0/0 via 172.31.0.1 dev eth0
route 10.10.1.0/24 via 172.31.0.2 dev eth0 proto knode
route 10.10.2.0/24 dev cbr0 proto kernel
route 10.10.3.0/24 via 172.31.0.4 dev eth0 proto knode
route 172.31.0.0/24 dev eth0 proto kernel
`},
		{hostprep.VXLAN, `addr 10.10.2.1/24 dev cbr0
addr 172.31.0.3/24 dev eth0
fdb 0e:6b:ac:1f:00:02 dst 172.31.0.2 dev knode.vxlan
fdb 0e:6b:ac:1f:00:04 dst 172.31.0.4 dev knode.vxlan
link cbr0 bridge mtu 1450 up
link eth0 device mtu 1500 up
link knode.vxlan vxlan mtu 1450 up mac 0e:6b:ac:1f:00:03 vni 1 port 8472 local 172.31.0.3 dev eth0
link lo device mtu 65536 up
neigh 10.10.1.0 lladdr 0e:6b:ac:1f:00:02 dev knode.vxlan
neigh 10.10.3.0 lladdr 0e:6b:ac:1f:00:04 dev knode.vxlan
route 0.0.0.0/0 via 172.31.0.1 dev eth0
route 10.10.1.0/24 via 10.10.1.0 dev knode.vxlan proto knode onlink
route 10.10.2.0/24 dev cbr0 proto kernel
route 10.10.3.0/24 via 10.10.3.0 dev knode.vxlan proto knode onlink
route 172.31.0.0/24 dev eth0 proto kernel
`},
	}
	// The firewall (firewall.go) of master b: forwarding to pods from pods,
	// members and Services only; etcd from masters; VXLAN from members.
	const restWant = `## iptables
*filter
:FORWARD ACCEPT
:INPUT ACCEPT
:KNODE-FORWARD -
:KNODE-INPUT -
:OUTPUT ACCEPT
-A FORWARD -m comment --comment knode: forward pod traffic -j KNODE-FORWARD
-A INPUT -m comment --comment knode: VXLAN and etcd from cluster members only -j KNODE-INPUT
-A KNODE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KNODE-FORWARD -m conntrack --ctstate DNAT -j ACCEPT
-A KNODE-FORWARD -s 10.10.0.0/16 -j ACCEPT
-A KNODE-FORWARD -s 172.31.0.3/32 -d 10.10.0.0/16 -j ACCEPT
-A KNODE-FORWARD -s 172.31.0.2/32 -d 10.10.0.0/16 -j ACCEPT
-A KNODE-FORWARD -s 172.31.0.4/32 -d 10.10.0.0/16 -j ACCEPT
-A KNODE-FORWARD -d 10.10.0.0/16 -j DROP
%s-A KNODE-INPUT -i lo -p tcp --dport 2379:2380 -j ACCEPT
-A KNODE-INPUT -p tcp -s 172.31.0.3/32 --dport 2379:2380 -j ACCEPT
-A KNODE-INPUT -p tcp --dport 2379:2380 -j DROP
*nat
:INPUT ACCEPT
:KNODE-POSTROUTING -
:OUTPUT ACCEPT
:POSTROUTING ACCEPT
:PREROUTING ACCEPT
-A KNODE-POSTROUTING -s 10.10.0.0/16 ! -d 10.10.0.0/16 -m addrtype ! --dst-type LOCAL -j MASQUERADE
-A POSTROUTING -m comment --comment knode: masquerade traffic leaving the pod range -j KNODE-POSTROUTING
## sysctl
net.bridge.bridge-nf-call-ip6tables = 1
net.bridge.bridge-nf-call-iptables = 1
net.ipv4.ip_forward = 1
`
	vxlanInput := map[hostprep.NetworkMode]string{hostprep.VXLAN: `-A KNODE-INPUT -p udp -s 172.31.0.2/32 --dport 8472 -j ACCEPT
-A KNODE-INPUT -p udp -s 172.31.0.4/32 --dport 8472 -j ACCEPT
-A KNODE-INPUT -p udp --dport 8472 -j DROP
`}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			f := newNetFake()
			before := f.String()
			runNet(t, testSpec(tt.mode), f.Host())
			got := f.String()
			net, rest, _ := strings.Cut(strings.TrimPrefix(got, "## net\n"), "## iptables")
			if net != tt.net {
				t.Errorf("net state:\n%s\nwant:\n%s", net, tt.net)
			}
			rest, _, _ = strings.Cut("## iptables"+rest, "## modules")
			if want := fmt.Sprintf(restWant, vxlanInput[tt.mode]); rest != want {
				t.Errorf("iptables and sysctl:\n%s\nwant:\n%s", rest, want)
			}
			if cs := runNet(t, testSpec(tt.mode), f.Host()); len(cs) != 0 {
				t.Errorf("second apply changed %v", cs)
			}
			if _, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{Phases: hostprep.NetworkPhases()}); err != nil {
				t.Fatalf("reset: %v", err)
			}
			// Loaded modules stay loaded, with their sysctls; the rest must be as before.
			if got, want := unloaded(f.String()), unloaded(before); got != want {
				t.Errorf("after reset:\n%s\nbefore:\n%s", got, want)
			}
		})
	}
}

func TestUpdatePeers(t *testing.T) {
	for _, mode := range []hostprep.NetworkMode{hostprep.Routed, hostprep.VXLAN} {
		t.Run(string(mode), func(t *testing.T) {
			f := newNetFake()
			s := testSpec(mode)
			runNet(t, s, f.Host())
			// c leaves, d joins.
			s.Peers[1] = hostprep.Node{Name: "d", Address: netip.MustParseAddr("172.31.0.5"), PodCIDR: netip.MustParsePrefix("10.10.4.0/24")}
			cs, err := hostprep.UpdatePeers(context.Background(), s, f.Host(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			state := f.Net.String()
			if strings.Contains(state, "10.10.3.0") || strings.Contains(state, "172.31.0.4") {
				t.Errorf("departed peer c still present:\n%s", state)
			}
			if !strings.Contains(state, "route 10.10.4.0/24") {
				t.Errorf("new peer d has no route:\n%s", state)
			}
			if fw := f.IPTables.String(); strings.Contains(fw, "172.31.0.4") || !strings.Contains(fw, "-s 172.31.0.5/32 -d 10.10.0.0/16 -j ACCEPT") {
				t.Errorf("firewall does not follow the members:\n%s", fw)
			}
			// Routes or overlay entries, then the rewritten firewall chains
			// (flush and 7 rules of FORWARD; in VXLAN mode flush and 6 of INPUT).
			wantN := map[hostprep.NetworkMode]int{hostprep.Routed: 2 + 8, hostprep.VXLAN: 6 + 8 + 7}[mode]
			if len(cs) != wantN {
				t.Errorf("changes = %d %v, want %d", len(cs), cs, wantN)
			}
			if cs, _ := hostprep.UpdatePeers(context.Background(), s, f.Host(), nil, nil); len(cs) != 0 {
				t.Errorf("second update changed %v", cs)
			}
		})
	}
}

func TestAutoMode(t *testing.T) {
	f := newNetFake()
	s := testSpec(hostprep.Auto)
	if m, err := hostprep.ResolveNetwork(context.Background(), s, f.Host()); err != nil || m != hostprep.Routed {
		t.Errorf("all on one subnet: %v %v, want routed", m, err)
	}
	s.Peers[0].Address = netip.MustParseAddr("192.168.9.9")
	if m, err := hostprep.ResolveNetwork(context.Background(), s, f.Host()); err != nil || m != hostprep.VXLAN {
		t.Errorf("peer elsewhere: %v %v, want vxlan", m, err)
	}
}

// TestBadInput checks that refused input changes nothing.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*hostpreptest.Host, *hostprep.Spec)
		wantErr string
	}{
		{"route in pod range", func(f *hostpreptest.Host, s *hostprep.Spec) {
			f.Net.AddHostRoute(hostprep.Route{Dst: netip.MustParsePrefix("10.10.7.0/24"), Gw: netip.MustParseAddr("172.31.0.1"), Dev: "eth0"})
		}, "pod range 10.10.0.0/16 conflicts with existing host route 10.10.7.0/24 via 172.31.0.1 dev eth0"},
		{"every peer off subnet in routed mode", func(f *hostpreptest.Host, s *hostprep.Spec) {
			s.Peers[0].Address = netip.MustParseAddr("192.168.9.9")
			s.Peers[1].Address = netip.MustParseAddr("192.168.9.10")
		}, "peer a (192.168.9.9) is not on a subnet of uplink eth0"},
		{"address on no interface", func(f *hostpreptest.Host, s *hostprep.Spec) {
			s.Self.Address = netip.MustParseAddr("172.31.0.99")
		}, "node address 172.31.0.99 is on no interface"},
		{"overlapping node CIDRs", func(f *hostpreptest.Host, s *hostprep.Spec) {
			s.Peers[0].PodCIDR = s.Self.PodCIDR
		}, "both hold pod CIDR"},
		{"cbr0 is not a bridge", func(f *hostpreptest.Host, s *hostprep.Spec) {
			f.Net.AddLink(hostprep.Link{Name: hostprep.BridgeName, Kind: "dummy", MTU: 1500})
		}, "cbr0 exists and is a dummy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNetFake()
			s := testSpec(hostprep.Routed)
			tt.mutate(f, s)
			before := f.String()
			_, err := (&hostprep.Runner{Phases: hostprep.NetworkPhases()}).Apply(context.Background(), s, f.Host())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if after := f.String(); after != before {
				t.Errorf("host changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

// TestRollback checks that a change failing midway leaves nothing half-applied.
func TestRollback(t *testing.T) {
	f := newNetFake()
	f.Modules.Have = map[string]bool{"overlay": true, "br_netfilter": true}
	f.Sysctl.Values["net.bridge.bridge-nf-call-iptables"] = "0"
	f.Sysctl.Values["net.bridge.bridge-nf-call-ip6tables"] = "0"
	before := f.String()
	f.Net.Fail["AddRoute"] = syscall.EPERM
	_, err := (&hostprep.Runner{Phases: hostprep.NetworkPhases()}).Apply(context.Background(), testSpec(hostprep.Routed), f.Host())
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "add route 10.10.1.0/24 via 172.31.0.2") {
		t.Fatalf("err = %v", err)
	}
	if after := f.String(); after != before {
		t.Errorf("host after failed apply:\n%s\nwant:\n%s", after, before)
	}
}

func TestDryRun(t *testing.T) {
	f := newNetFake()
	before := f.String()
	var out strings.Builder
	cs, err := (&hostprep.Runner{Phases: hostprep.NetworkPhases(), DryRun: true, Out: &out}).Apply(context.Background(), testSpec(hostprep.Routed), f.Host())
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != before {
		t.Error("dry run changed the host")
	}
	for _, want := range []string{"[kernel] would set sysctl net.ipv4.ip_forward=1", "[bridge] would create bridge cbr0 mtu 1500",
		"[pod-network] would add route 10.10.1.0/24 via 172.31.0.2 proto knode", "[iptables] would hook nat/POSTROUTING -> KNODE-POSTROUTING"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out.String())
		}
	}
	if len(cs) == 0 {
		t.Error("dry run listed no changes")
	}
}

// unloaded drops what loading modules adds to a fake host's text.
func unloaded(state string) string {
	state, _, _ = strings.Cut(state, "## modules")
	state = strings.ReplaceAll(state, "net.bridge.bridge-nf-call-ip6tables = 0\n", "")
	return strings.ReplaceAll(state, "net.bridge.bridge-nf-call-iptables = 0\n", "")
}

// In routed mode a peer off this node's segment gets no route, and the
// others get theirs.
func TestRoutedPeerOffSubnetSkipped(t *testing.T) {
	f := newNetFake()
	s := testSpec(hostprep.Routed)
	s.Peers[0].Address = netip.MustParseAddr("192.168.9.9")
	runNet(t, s, f.Host())
	rs, _ := f.Net.Routes()
	var got []string
	for _, r := range rs {
		if r.Proto == hostprep.RouteProto {
			got = append(got, r.Dst.String()+" via "+r.Gw.String())
		}
	}
	if want := []string{"10.10.3.0/24 via 172.31.0.4"}; !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
}
