//go:build linux

package hostprep

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// addPod puts a network namespace with address addr/24 on host i's cbr0,
// its default route via the bridge, as the CNI bridge plugin would.
func (l *lab) addPod(t *testing.T, i int, addr, gw string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-pod", l.hosts[i])
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	sh(t, "ip", "-n", l.hosts[i], "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "-n", l.hosts[i], "link", "set", "vpod", "master", BridgeName, "up")
	sh(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", ns, "route", "add", "default", "via", gw)
	return ns
}

// udpReaches reports whether a datagram sent from src in namespace from
// arrives at the listener in namespace to (no reply needed: the sender may
// have no way back).
func udpReaches(t *testing.T, from, src, to, dst string) bool {
	t.Helper()
	var pc net.PacketConn
	if err := in(to, func() (err error) {
		pc, err = net.ListenPacket("udp4", net.JoinHostPort(dst, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	err := in(from, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer c.Close()
		for range 3 { // the first may go to ARP resolution
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send from %s (%s): %v", from, src, err)
	}
	pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 16)
	n, _, err := pc.ReadFrom(buf)
	return err == nil && string(buf[:n]) == "ping"
}

// TestNetnsFirewall: h0 and h1 form a cluster; h2 is on the same LAN but
// not a member. A pod on h0 is reached from the member's address and pod
// range, never from the non-member's address; in VXLAN mode h2, configured
// as if h0 were its peer, cannot get a packet through h0's VXLAN port. Reset
// leaves the hosts as they were.
func TestNetnsFirewall(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		t.Skip("needs br_netfilter")
	}
	for _, mode := range []NetworkMode{Routed, VXLAN} {
		t.Run(string(mode), func(t *testing.T) {
			l := newLab(t, 3)
			before := l.snapshot(0)
			cluster := func(i int) *Spec {
				s := l.spec(i, mode)
				s.Peers = s.Peers[:1] // h0 and h1 only
				return s
			}
			for i := range 2 {
				if _, err := l.apply(i, cluster(i), nil); err != nil {
					t.Fatalf("apply %s: %v", l.hosts[i], err)
				}
			}
			// h2 believes h0 is its peer: routes (or VXLAN) to h0's pods.
			if _, err := l.apply(2, l.spec(2, mode), nil); err != nil {
				t.Fatalf("apply %s: %v", l.hosts[2], err)
			}
			pod := l.addPod(t, 0, "10.10.1.5", "10.10.1.1")
			if mode == Routed {
				if !udpReaches(t, l.hosts[1], "172.31.0.3", pod, "10.10.1.5") {
					t.Error("member h1's address cannot reach a pod on h0")
				}
				if udpReaches(t, l.hosts[2], "172.31.0.4", pod, "10.10.1.5") {
					t.Error("non-member h2's address reached a pod on h0")
				}
			}
			if !udpReaches(t, l.hosts[1], "10.10.2.1", pod, "10.10.1.5") {
				t.Error("member h1's pod range cannot reach a pod on h0")
			}
			if mode == VXLAN && udpReaches(t, l.hosts[2], "10.10.3.1", pod, "10.10.1.5") {
				t.Error("non-member h2 got a packet through h0's VXLAN port")
			}
			sh(t, "ip", "-n", l.hosts[0], "link", "del", "vpod")
			if err := l.reset(0); err != nil {
				t.Fatal(err)
			}
			if after := l.snapshot(0); after != before {
				t.Errorf("h0 after reset:\n%s\nbefore:\n%s", after, before)
			}
		})
	}
}
