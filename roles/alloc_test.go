package roles

import (
	"fmt"
	"testing"

	"knode.dev/knode/gossip"
)

func snapWith(nodes ...gossip.NodeInfo) gossip.Snapshot {
	s := gossip.Snapshot{Nodes: map[string]gossip.NodeInfo{}, Assignments: map[string]gossip.Assignment{}}
	for i, n := range nodes {
		if n.JoinedAt == 0 {
			n.JoinedAt = int64(i + 1)
		}
		s.Nodes[n.Name] = n
	}
	return s
}

func allAlive(s gossip.Snapshot) map[string]bool {
	out := map[string]bool{}
	for n := range s.Nodes {
		out[n] = true
	}
	return out
}

func counter() func() uint64 {
	var c uint64
	return func() uint64 { c++; return c }
}

func apply(s gossip.Snapshot, as []gossip.Assignment) {
	for _, a := range as {
		s.Assignments[a.Node] = a
	}
}

func TestPlanAssignsInJoinOrder(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "c"}, gossip.NodeInfo{Name: "a"}, gossip.NodeInfo{Name: "b"}, gossip.NodeInfo{Name: "d", JoinedAt: 3})
	got := Plan(s, testPlan(3), allAlive(s), "c", counter())
	apply(s, got)
	want := map[string]string{"c": "0 10.10.0.0/24", "a": "1 10.10.1.0/24", "b": "2 10.10.2.0/24", "d": "-1 10.10.3.0/24"}
	for n, w := range want {
		if a := s.Assignments[n]; fmt.Sprintf("%d %s", a.Seat, a.PodCIDR) != w {
			t.Errorf("%s: seat %d %s, want %s", n, a.Seat, a.PodCIDR, w)
		}
	}
	if again := Plan(s, testPlan(3), allAlive(s), "c", counter()); len(again) != 0 {
		t.Errorf("second plan changed %v", again)
	}
	if m := Masters(s); fmt.Sprint(m) != "[c a b]" {
		t.Errorf("masters %v", m)
	}
}

func TestPlanIsSticky(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "m"}, gossip.NodeInfo{Name: "w"})
	apply(s, Plan(s, testPlan(1), allAlive(s), "m", counter()))
	before := s.Assignments["w"]
	// w is dead, a new node arrives: it must not get w's subnet.
	s.Nodes["x"] = gossip.NodeInfo{Name: "x", JoinedAt: 9}
	alive := map[string]bool{"m": true, "x": true}
	apply(s, Plan(s, testPlan(1), alive, "m", counter()))
	if s.Assignments["x"].PodCIDR == before.PodCIDR || s.Assignments["w"] != before {
		t.Errorf("dead node's subnet reassigned: x=%v w=%v", s.Assignments["x"], s.Assignments["w"])
	}
}

func TestPlanGivesBackWantedSubnet(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "m"}, gossip.NodeInfo{Name: "w", WantCIDR: mustPrefix("10.10.7.0/24")},
		gossip.NodeInfo{Name: "bad", WantCIDR: mustPrefix("192.168.0.0/24")})
	apply(s, Plan(s, testPlan(1), allAlive(s), "m", counter()))
	if got := s.Assignments["w"].PodCIDR; got != mustPrefix("10.10.7.0/24") {
		t.Errorf("w got %s, wanted its old 10.10.7.0/24", got)
	}
	if got := s.Assignments["bad"].PodCIDR; got != mustPrefix("10.10.1.0/24") {
		t.Errorf("an out-of-range wish gave %s", got)
	}
}

func TestPlanResolvesDuplicates(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "m"}, gossip.NodeInfo{Name: "a"}, gossip.NodeInfo{Name: "b"})
	s.Assignments["m"] = gossip.Assignment{Node: "m", PodCIDR: mustPrefix("10.10.0.0/24"), Seat: 0, Version: 1, By: "m"}
	// Both sides of a partition gave 10.10.1.0/24 and seat 1 away.
	s.Assignments["a"] = gossip.Assignment{Node: "a", PodCIDR: mustPrefix("10.10.1.0/24"), Seat: 1, Version: 5, By: "m"}
	s.Assignments["b"] = gossip.Assignment{Node: "b", PodCIDR: mustPrefix("10.10.1.0/24"), Seat: 1, Version: 7, By: "x"}
	got := Plan(s, testPlan(3), allAlive(s), "m", func() uint64 { return 10 })
	apply(s, got)
	if len(got) != 1 || got[0].Node != "b" {
		t.Fatalf("want one decision moving b, got %v", got)
	}
	if s.Assignments["a"].PodCIDR != mustPrefix("10.10.1.0/24") || s.Assignments["a"].Seat != 1 {
		t.Errorf("older holder a lost: %v", s.Assignments["a"])
	}
	if b := s.Assignments["b"]; b.PodCIDR == mustPrefix("10.10.1.0/24") || b.Seat != 2 {
		t.Errorf("b: %v", b)
	}
}

func TestPlanReleasesRemovedNodes(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "m"}, gossip.NodeInfo{Name: "w"})
	apply(s, Plan(s, testPlan(1), allAlive(s), "m", counter()))
	w := s.Nodes["w"]
	w.Removed = true
	s.Nodes["w"] = w
	apply(s, Plan(s, testPlan(1), allAlive(s), "m", counter()))
	if !s.Assignments["w"].Released {
		t.Fatal("removed node not released")
	}
	s.Nodes["n"] = gossip.NodeInfo{Name: "n", JoinedAt: 9}
	apply(s, Plan(s, testPlan(1), allAlive(s), "m", counter()))
	if got := s.Assignments["n"].PodCIDR; got != mustPrefix("10.10.1.0/24") {
		t.Errorf("released subnet not reused: %s", got)
	}
}

func TestAllocator(t *testing.T) {
	s := snapWith(gossip.NodeInfo{Name: "a"}, gossip.NodeInfo{Name: "b"}, gossip.NodeInfo{Name: "c"})
	if got := Allocator(s, allAlive(s)); got != "a" {
		t.Errorf("new cluster: %s", got)
	}
	apply(s, Plan(s, testPlan(3), allAlive(s), "a", counter()))
	if got := Allocator(s, map[string]bool{"b": true, "c": true}); got != "b" {
		t.Errorf("first master dead: %s, want b", got)
	}
}

func TestSubnet(t *testing.T) {
	for i, want := range map[int]string{0: "10.10.0.0/24", 1: "10.10.1.0/24", 255: "10.10.255.0/24"} {
		if got := Subnet(mustPrefix("10.10.0.0/16"), 24, i).String(); got != want {
			t.Errorf("%d: %s, want %s", i, got, want)
		}
	}
	if got := Subnet(mustPrefix("10.10.0.0/16"), 26, 5).String(); got != "10.10.1.64/26" {
		t.Errorf("/26 #5: %s", got)
	}
}
