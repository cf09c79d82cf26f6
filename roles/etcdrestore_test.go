package roles

import (
	"testing"

	"knode.dev/knode/gossip"
)

func TestEtcdRestoreToFollow(t *testing.T) {
	s := emptySnap(3)
	seat := func(name string, seat int) {
		s.Assignments[name] = gossip.Assignment{Node: name, Seat: seat, PodCIDR: Subnet(testPlan(3).PodCIDR, 24, len(s.Assignments)), Version: uint64(len(s.Assignments) + 1)}
	}
	seat("m0", 0)
	seat("m1", 1)
	seat("m2", 2)
	seat("w", Worker)
	type want struct {
		restorer string
		at       uint64
		ok       bool
	}
	check := func(what, self string, followed uint64, w want) {
		t.Helper()
		r, at, ok := EtcdRestoreToFollow(s, self, followed)
		if (want{r, at, ok}) != w {
			t.Errorf("%s: %s follows %q at %d (%v), want %+v", what, self, r, at, ok, w)
		}
	}
	check("no restore", "m1", 0, want{})
	s.Nodes["w"] = gossip.NodeInfo{Name: "w", EtcdRestore: 500}
	check("a worker's record", "m1", 0, want{})
	s.Nodes["m0"] = gossip.NodeInfo{Name: "m0", EtcdRestore: 100}
	check("m0 restored", "m1", 0, want{"m0", 100, true})
	check("the restorer itself", "m0", 100, want{})
	check("followed already", "m1", 100, want{})
	s.Nodes["m2"] = gossip.NodeInfo{Name: "m2", EtcdRestore: 200}
	check("a newer restore", "m1", 100, want{"m2", 200, true})
	check("the older restorer follows the newer", "m0", 100, want{"m2", 200, true})
	s.Nodes["m0"] = gossip.NodeInfo{Name: "m0", EtcdRestore: 200}
	check("same time: the lower name", "m1", 0, want{"m0", 200, true})
	s.Nodes["m0"] = gossip.NodeInfo{Name: "m0", EtcdRestore: 200, Removed: true}
	check("a removed restorer", "m1", 0, want{"m2", 200, true})
	s.Assignments["m2"] = gossip.Assignment{Node: "m2", Seat: Worker, Released: true}
	check("a released seat", "m1", 0, want{})
}
