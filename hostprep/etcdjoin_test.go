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
	list := []etcdMember{{Name: "m1", PeerURLs: []string{"https://10.0.0.1:2380"}}, {PeerURLs: []string{"https://10.0.0.2:2380"}}}
	if _, ok := etcdMembership(list, self, s); ok {
		t.Fatal("self found before it was added")
	}
	list = append(list, etcdMember{PeerURLs: []string{self}})
	got, ok := etcdMembership(list, self, s)
	if !ok || fmt.Sprint(got) != "[{m1 10.0.0.1} {m2 10.0.0.2} {m3 10.0.0.3}]" {
		t.Errorf("membership %v %v", got, ok)
	}
}
