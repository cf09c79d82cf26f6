package config

import (
	"fmt"
	"net"
	"net/netip"
)

// SourceAddr is the address this host's routing table sends packets to peer from: on a host
// with several interfaces (a NAT interface first, the cluster's network second), its address
// on the way to that peer. No packet is sent: connecting a UDP socket only looks the route up.
func SourceAddr(peer netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", peer, err)
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if !src.IsValid() || src.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("route to %s: no source address", peer)
	}
	return src, nil
}

// AdvertiseToward fills in Advertise, when neither --advertise nor a specific --bind chose
// it, with the address this host reaches peer from (SourceAddr) and Bind's port, so that a
// joining machine with several interfaces is known by its address on the peer's network
// rather than by its first private one. It reports whether it chose; a loopback route (a peer
// on this machine) leaves the choice to gossip.
func (n *Node) AdvertiseToward(peer netip.Addr) (bool, error) {
	if n.Advertise.IsValid() || !n.Bind.Addr().IsUnspecified() {
		return false, nil
	}
	src, err := SourceAddr(peer)
	if err != nil {
		return false, Usagef("cannot tell this host's address toward the peer %s (%v): check the peer's address, or give --advertise", peer, err)
	}
	if src.IsLoopback() {
		return false, nil
	}
	n.Advertise = netip.AddrPortFrom(src, n.Bind.Port())
	return true, nil
}
