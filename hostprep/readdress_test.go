package hostprep_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
	"knode.dev/knode/pki"
)

// readdressHost configures node b (172.31.0.3) as a master or a worker, then
// moves the host's address to 172.31.0.9, as a new DHCP lease would, and
// returns the spec once b's decision binds the new address (a a master too).
func readdressHost(t *testing.T, master bool) (*hostprep.Spec, *hostpreptest.Host, *pki.CA) {
	t.Helper()
	f := newNetFake()
	s, ca := fullSpec(t, hostprep.Routed)
	s.Self.Master = master
	if !master {
		s.Peers[0].Master = true
		s.PKI = hostprep.PKI{CA: &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}}
		workerCreds(t, s, ca, f.Probe.F.Now)
	}
	if _, err := (&hostprep.Runner{Out: io.Discard}).Apply(context.Background(), s, f.Host()); err != nil {
		t.Fatal(err)
	}
	if master { // etcd ran: it has data, and a (joined since) is a member
		f.Files.MkdirAll(path.Join(hostprep.EtcdDataDir, "member"), 0o700)
		f.Etcd.Peers = []hostprep.EtcdPeer{{Name: "b", PeerURLs: []string{"https://172.31.0.3:2380"}}, {Name: "a", PeerURLs: []string{"https://172.31.0.2:2380"}}}
	}
	f.Systemd.Restarts = nil
	if err := f.Net.DelAddr(hostprep.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix("172.31.0.3/24")}); err != nil {
		t.Fatal(err)
	}
	if err := f.Net.AddAddr(hostprep.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix("172.31.0.9/24")}); err != nil {
		t.Fatal(err)
	}
	moved := *s
	moved.Self.Address = netip.MustParseAddr("172.31.0.9")
	moved.Peers = slices.Clone(s.Peers)
	moved.Peers[0].Master = true
	if !master { // a master signed the serving certificate for the new address
		moved.PKI.KubeletServing = issueFor(t, ca, pki.KubeletServing("b", moved.Self.Address), f.Probe.F.Now)
	}
	return &moved, f, ca
}

func issueFor(t *testing.T, ca *pki.CA, spec pki.CertSpec, now time.Time) *pki.Credential {
	t.Helper()
	c, err := pki.Issue(ca, spec, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A node whose address changed re-renders everything on its host that holds
// it: the kubelet's --node-ip (restarted), the certificates naming it, the
// pod network and firewall, and on a master the apiserver's
// --advertise-address and etcd: its member moved through the other master
// first, then etcd.yaml with the new URLs. A second pass changes nothing.
func TestReaddress(t *testing.T) {
	for _, master := range []bool{true, false} {
		name := map[bool]string{true: "master", false: "worker"}[master]
		t.Run(name, func(t *testing.T) {
			s, f, _ := readdressHost(t, master)
			old := netip.MustParseAddr("172.31.0.3")
			if _, err := hostprep.Readdress(context.Background(), s, f.Host(), old, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			files := []string{path.Join(hostprep.SystemdUnitDir, "kubelet.service")}
			certs := []string{"kubelet-serving"}
			if master {
				files = append(files, path.Join(hostprep.ManifestsDir, "kube-apiserver.yaml"), path.Join(hostprep.ManifestsDir, "etcd.yaml"))
				certs = append(certs, "apiserver", "etcd/server", "etcd/peer")
			}
			for _, name := range files {
				b, err := f.Files.ReadFile(name)
				if err != nil || !strings.Contains(string(b), "172.31.0.9") || strings.Contains(string(b), "172.31.0.3") {
					t.Errorf("%s does not name the new address only (%v):\n%s", name, err, b)
				}
			}
			for _, name := range certs {
				b, _ := f.Files.ReadFile(path.Join(hostprep.PKIDir, name+".crt"))
				cert, err := pki.ParseCert(b)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				var ips []string
				for _, ip := range cert.IPAddresses {
					ips = append(ips, ip.String())
				}
				if !slices.Contains(ips, "172.31.0.9") || slices.Contains(ips, "172.31.0.3") {
					t.Errorf("%s certificate's addresses %v, want 172.31.0.9 and not 172.31.0.3", name, ips)
				}
			}
			if !slices.Contains(f.Systemd.Restarts, "kubelet.service") {
				t.Errorf("kubelet not restarted: %v", f.Systemd.Restarts)
			}
			if master {
				want := []hostprep.EtcdPeer{{Name: "b", PeerURLs: []string{"https://172.31.0.9:2380"}}, {Name: "a", PeerURLs: []string{"https://172.31.0.2:2380"}}}
				if !slices.EqualFunc(f.Etcd.Peers, want, func(a, b hostprep.EtcdPeer) bool { return a.Name == b.Name && slices.Equal(a.PeerURLs, b.PeerURLs) }) {
					t.Errorf("etcd membership %+v, want %+v", f.Etcd.Peers, want)
				}
				if want := "update https://172.31.0.2:2379,https://127.0.0.1:2379 b https://172.31.0.9:2380"; !slices.Contains(f.Etcd.Calls, want) {
					t.Errorf("etcd calls %q, want %q", f.Etcd.Calls, want)
				}
			}
			calls := len(f.Etcd.Calls)
			if cs, err := hostprep.Readdress(context.Background(), s, f.Host(), s.Self.Address, io.Discard, slog.New(slog.DiscardHandler)); err != nil || len(cs) != 0 {
				t.Errorf("a second pass: %v %v", cs, err)
			}
			if cs, err := (&hostprep.Runner{Out: io.Discard}).Apply(context.Background(), s, f.Host()); err != nil || len(cs) != 0 {
				t.Errorf("every phase after the move: %v %v", cs, err)
			}
			if len(f.Etcd.Calls) != calls {
				t.Errorf("etcd called again: %q", f.Etcd.Calls[calls:])
			}
		})
	}
}

// A single master whose etcd member cannot be moved yet (its etcd exited
// with the old address; nobody else holds a copy) still gets etcd.yaml with
// the new URLs, so that etcd comes back on them, and the error says the move
// is still to be made.
func TestReaddressSingleMasterEtcdDown(t *testing.T) {
	s, f, _ := readdressHost(t, true)
	s.Peers[0].Master = false
	f.Etcd.Down["https://127.0.0.1:2379"] = true
	_, err := hostprep.Readdress(context.Background(), s, f.Host(), netip.MustParseAddr("172.31.0.3"), io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "move etcd member b to https://172.31.0.9:2380") {
		t.Fatalf("err = %v, want the member move named", err)
	}
	b, _ := f.Files.ReadFile(path.Join(hostprep.ManifestsDir, "etcd.yaml"))
	if !strings.Contains(string(b), "--listen-peer-urls=https://172.31.0.9:2380") {
		t.Errorf("etcd.yaml not rewritten:\n%s", b)
	}
	delete(f.Etcd.Down, "https://127.0.0.1:2379")
	if _, err := hostprep.Readdress(context.Background(), s, f.Host(), netip.MustParseAddr("172.31.0.3"), io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got := f.Etcd.Peers[0].PeerURLs; !slices.Equal(got, []string{"https://172.31.0.9:2380"}) {
		t.Errorf("b's peer URLs %v after etcd answered", got)
	}
}

// A peer whose address changed keeps its subnet: the route or the VXLAN
// entries (FDB and neighbour, whose MAC derives from the address) and the
// firewall's member rules follow it, nothing of the old address stays.
func TestUpdatePeersAddressChange(t *testing.T) {
	for _, mode := range []hostprep.NetworkMode{hostprep.Routed, hostprep.VXLAN} {
		t.Run(string(mode), func(t *testing.T) {
			f := newNetFake()
			s := testSpec(mode)
			s.Peers[0].Master = true
			runNet(t, s, f.Host())
			s.Peers[0].Address = netip.MustParseAddr("172.31.0.12")
			if _, err := hostprep.UpdatePeers(context.Background(), s, f.Host(), nil, nil); err != nil {
				t.Fatal(err)
			}
			state, fw := f.Net.String(), f.IPTables.String()
			if strings.Contains(state, "172.31.0.2 ") || strings.Contains(state, "172.31.0.2\n") || strings.Contains(fw, "172.31.0.2/") {
				t.Errorf("the old address stays:\n%s\n%s", state, fw)
			}
			if !strings.Contains(state, "172.31.0.12") || !strings.Contains(fw, "-s 172.31.0.12/32") {
				t.Errorf("the new address is missing:\n%s\n%s", state, fw)
			}
			if cs, _ := hostprep.UpdatePeers(context.Background(), s, f.Host(), nil, nil); len(cs) != 0 {
				t.Errorf("second update changed %v", cs)
			}
		})
	}
}
