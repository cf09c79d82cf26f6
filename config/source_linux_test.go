//go:build linux

package config

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestAdvertiseTowardTwoInterfaces (root): a host whose first interface is a NAT network
// with the default route (as Vagrant's machines have) and whose second is the cluster's
// network. A join toward a peer on the second is advertised with the address on the second,
// where gossip's own choice (the first private address) would be the NAT one.
func TestAdvertiseTowardTwoInterfaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread ends with this goroutine, its namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare a network namespace: %v", err)
			return
		}
		for _, l := range []struct{ name, cidr string }{{"nat0", "10.0.2.15/24"}, {"lab0", "10.213.0.12/24"}} {
			// veth pairs (both ends here): this kernel kind has no dummy links.
			link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.name}, PeerName: l.name + "p"}
			addr, _ := netlink.ParseAddr(l.cidr)
			if err := netlink.LinkAdd(link); err != nil {
				t.Errorf("add %s: %v", l.name, err)
				return
			}
			if err := netlink.AddrAdd(link, addr); err != nil {
				t.Errorf("address %s on %s: %v", l.cidr, l.name, err)
				return
			}
			for _, name := range []string{l.name, l.name + "p"} {
				if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
					t.Errorf("up %s: %v", name, err)
					return
				}
			}
		}
		nat, _ := netlink.LinkByName("nat0")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: nat.Attrs().Index, Gw: net.ParseIP("10.0.2.2")}); err != nil {
			t.Errorf("default route via nat0: %v", err)
			return
		}
		for peer, want := range map[string]string{"10.213.0.11": "10.213.0.12", "10.0.2.3": "10.0.2.15", "192.0.2.1": "10.0.2.15"} {
			n := Node{Bind: netip.MustParseAddrPort("0.0.0.0:7946")}
			chose, err := n.AdvertiseToward(netip.MustParseAddr(peer))
			if wantAP := netip.AddrPortFrom(netip.MustParseAddr(want), 7946); err != nil || !chose || n.Advertise != wantAP {
				t.Errorf("toward %s: chose %v, advertise %s, %v; want %s", peer, chose, n.Advertise, err, wantAP)
			}
		}
	}()
	<-done
}
