package hostprep

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestEtcdMembership(t *testing.T) {
	s := &Spec{Self: Node{Name: "m3", Address: netip.MustParseAddr("10.0.0.3")},
		Peers: []Node{{Name: "m1", Address: netip.MustParseAddr("10.0.0.1")}, {Name: "m2", Address: netip.MustParseAddr("10.0.0.2")}}}
	self := "https://10.0.0.3:2380"
	list := []EtcdPeer{{Name: "m1", PeerURLs: []string{"https://10.0.0.1:2380"}}, {PeerURLs: []string{"https://10.0.0.2:2380"}}}
	if _, ok := etcdMembership(list, self, s); ok {
		t.Fatal("self found before it was added")
	}
	// Peer URLs knode does not write (another port, plain http, a name) are
	// not members knode can start with.
	list = append(list, EtcdPeer{Name: "x", PeerURLs: []string{"https://10.0.0.9:2390"}}, EtcdPeer{Name: "y", PeerURLs: []string{"http://10.0.0.8:2380"}},
		EtcdPeer{Name: "z", PeerURLs: []string{"https://etcd.example:2380"}}, EtcdPeer{Name: "w"})
	list = append(list, EtcdPeer{PeerURLs: []string{self}})
	got, ok := etcdMembership(list, self, s)
	if !ok || fmt.Sprint(got) != "[{m1 10.0.0.1} {m2 10.0.0.2} {m3 10.0.0.3}]" {
		t.Errorf("membership %v %v", got, ok)
	}
}
