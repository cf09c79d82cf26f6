package config

import (
	"net/netip"
	"testing"
)

func TestAdvertiseTowardKeepsAGivenChoice(t *testing.T) {
	peer := netip.MustParseAddr("127.0.0.1")
	for _, n := range []Node{
		{Bind: netip.MustParseAddrPort("0.0.0.0:7946"), Advertise: netip.MustParseAddrPort("192.0.2.7:7946")},
		{Bind: netip.MustParseAddrPort("192.0.2.8:7946")},
		// A peer on this machine: the route's source is loopback, which no other machine
		// could reach; gossip keeps its own choice.
		{Bind: netip.MustParseAddrPort("0.0.0.0:7946")},
	} {
		before := n
		chose, err := n.AdvertiseToward(peer)
		if err != nil || chose || n != before {
			t.Errorf("AdvertiseToward(%s) on %+v: chose %v, %+v, %v; want no change", peer, before, chose, n, err)
		}
	}
}

func TestSourceAddrLoopback(t *testing.T) {
	got, err := SourceAddr(netip.MustParseAddr("127.0.0.1"))
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("SourceAddr(127.0.0.1) = %s, %v; want 127.0.0.1", got, err)
	}
}
