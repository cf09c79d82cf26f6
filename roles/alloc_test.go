package roles

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"testing"

	"knode.dev/knode/gossip"
)

// masterToken is the master token every test snapshot holds (valid, no
// expiry); claimOf proves it.
var masterToken = gossip.TokenRecord{ID: [8]byte{1}, Verifier: gossip.Key{2}, Master: true, By: "m"}

func emptySnap(masters int) gossip.Snapshot {
	c := testPlan(masters)
	return gossip.Snapshot{Cluster: &gossip.ClusterInfo{Cluster: c}, Nodes: map[string]gossip.NodeInfo{}, Assignments: map[string]gossip.Assignment{},
		Tokens: map[string]gossip.TokenRecord{masterToken.Name(): masterToken}}
}

// claimOf is a claim for name with a key derived from its name (and a
// variant, for "another machine with the same name"), proving the master
// token: it may take a free seat.
func claimOf(name string, at int64, variant byte) gossip.Claim {
	c := workerClaimOf(name, at, variant)
	c.TokenID, c.Proof = masterToken.ID, gossip.SeatProof(masterToken.Verifier, name, c.SignKey)
	return c
}

// workerClaimOf is the same claim without a master token.
func workerClaimOf(name string, at int64, variant byte) gossip.Claim {
	var k gossip.Key
	copy(k[:], name)
	k[31] = variant
	return gossip.Claim{Name: name, SignKey: k, BoxKey: k, Addr: addrOf(name, variant), Port: 7946, Time: at}
}

// addrOf is a machine's address, one per name and variant.
func addrOf(name string, variant byte) netip.Addr {
	h := fnv.New32a()
	h.Write(append([]byte(name), variant))
	return netip.AddrFrom4([4]byte{10, 200, byte(h.Sum32() >> 8), byte(h.Sum32())})
}

// TestSeatsNeedAMasterToken: a free seat goes only to a claim that proves a
// master token valid when it was made.
func TestSeatsNeedAMasterToken(t *testing.T) {
	s := emptySnap(3)
	expiring := gossip.TokenRecord{ID: [8]byte{3}, Verifier: gossip.Key{4}, Master: true, Expires: 100, By: "m"}
	workerTok := gossip.TokenRecord{ID: [8]byte{5}, Verifier: gossip.Key{6}, By: "m"}
	s.Tokens[expiring.Name()], s.Tokens[workerTok.Name()] = expiring, workerTok
	proving := func(c gossip.Claim, r gossip.TokenRecord) gossip.Claim {
		c.TokenID, c.Proof = r.ID, gossip.SeatProof(r.Verifier, c.Name, c.SignKey)
		return c
	}
	stolen := claimOf("thief", 5, 0)
	stolen.Name = "thief2" // a proof made for another name
	cl := claims(
		workerClaimOf("plain", 1, 0),
		proving(workerClaimOf("worker-token", 2, 0), workerTok),
		proving(workerClaimOf("late", 101e9, 0), expiring), // made after the token expired
		stolen,
		proving(workerClaimOf("in-time", 99e9, 0), expiring),
	)
	apply(s, Plan(s, cl, testPlan(3), "m", counter()))
	if a := s.Assignments["worker-token"]; a.Seat != Worker || !a.PodCIDR.IsValid() {
		t.Errorf("worker token: seat %d %s, want a worker with a subnet", a.Seat, a.PodCIDR)
	}
	// No valid token proven: no place at all, and a refusal once the token
	// is known to be invalid (an unknown one may be on its way).
	for n, refused := range map[string]bool{"plain": false, "late": true, "thief2": true} {
		if a, ok := s.Assignments[n]; ok {
			t.Errorf("%s admitted without a valid token: %+v", n, a)
		}
		if why := Refusal(s, cl[n]); (why != "") != refused {
			t.Errorf("%s: refusal %q, want refused %v", n, why, refused)
		}
	}
	if a := s.Assignments["in-time"]; a.Seat != 0 {
		t.Errorf("a claim proving a valid master token got seat %d", a.Seat)
	}
}

func claims(cs ...gossip.Claim) map[string]gossip.Claim {
	out := map[string]gossip.Claim{}
	for _, c := range cs {
		out[c.Name] = c
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

func TestPlanAssignsInClaimOrder(t *testing.T) {
	s := emptySnap(3)
	cl := claims(claimOf("c", 1, 0), claimOf("a", 2, 0), claimOf("b", 3, 0), claimOf("d", 3, 0))
	got := Plan(s, cl, testPlan(3), "c", counter())
	apply(s, got)
	want := map[string]string{"c": "0 10.10.0.0/24", "a": "1 10.10.1.0/24", "b": "2 10.10.2.0/24", "d": "-1 10.10.3.0/24"}
	for n, w := range want {
		if a := s.Assignments[n]; fmt.Sprintf("%d %s", a.Seat, a.PodCIDR) != w {
			t.Errorf("%s: seat %d %s, want %s", n, a.Seat, a.PodCIDR, w)
		}
		if s.Assignments[n].SignKey != cl[n].SignKey || s.Assignments[n].By != "c" {
			t.Errorf("%s: decision does not bind the claimed key or name its allocator: %+v", n, s.Assignments[n])
		}
	}
	if again := Plan(s, cl, testPlan(3), "c", counter()); len(again) != 0 {
		t.Errorf("second plan changed %v", again)
	}
	if m := Masters(s); fmt.Sprint(m) != "[c a b]" {
		t.Errorf("masters %v", m)
	}
}

func TestPlanIsSticky(t *testing.T) {
	s := emptySnap(1)
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "m", counter()))
	before := s.Assignments["w"]
	// w is gone (dead), a new node arrives: it must not get w's subnet.
	apply(s, Plan(s, claims(claimOf("x", 3, 0)), testPlan(1), "m", counter()))
	if s.Assignments["x"].PodCIDR == before.PodCIDR || s.Assignments["w"] != before {
		t.Errorf("dead node's subnet reassigned: x=%v w=%v", s.Assignments["x"], s.Assignments["w"])
	}
}

func TestPlanRefusesTakenNames(t *testing.T) {
	s := emptySnap(1)
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "m", counter()))
	impostor := claimOf("w", 3, 9)
	if got := Plan(s, claims(impostor), testPlan(1), "m", counter()); len(got) != 0 {
		t.Errorf("a claim for a name bound to another key was granted: %v", got)
	}
	if Refusal(s, impostor) == "" {
		t.Error("no refusal for a taken name")
	}
	if Refusal(s, claimOf("w", 4, 0)) != "" {
		t.Error("the holder of the name is refused")
	}
}

func TestPlanFollowsAddressChange(t *testing.T) {
	s, tick := emptySnap(1), counter()
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "m", tick))
	before := s.Assignments["w"]
	moved := claimOf("w", 5, 0)
	moved.Addr = netip.MustParseAddr("192.0.2.9")
	got := Plan(s, claims(moved), testPlan(1), "m", tick)
	if len(got) != 1 || got[0].Addr != moved.Addr || got[0].PodCIDR != before.PodCIDR || got[0].Seat != before.Seat || got[0].Version <= before.Version {
		t.Errorf("address update: %v (before %v)", got, before)
	}
}

// A claim for an address another node's decision binds gets nothing, new
// node or address update (a token holder after that node's serving
// certificate, routes or firewall entry), and its refusal names the holder;
// once the holder moved away, the address is free. An address in the
// service or pod range is nobody's to claim. Loopback is shared.
func TestPlanRefusesTakenAddress(t *testing.T) {
	s, tick := emptySnap(1), counter()
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "m", tick))
	wAddr := s.Assignments["w"].Addr
	evil := workerClaimOf("evil", 3, 0)
	evil.TokenID, evil.Proof = masterToken.ID, gossip.SeatProof(masterToken.Verifier, "evil", evil.SignKey)
	evil.Addr = wAddr
	if got := Plan(s, claims(evil), testPlan(1), "m", tick); len(got) != 0 {
		t.Errorf("a claim at w's address was granted: %v", got)
	}
	if why := Refusal(s, evil); !strings.Contains(why, "node w's") || !strings.Contains(why, wAddr.String()) {
		t.Errorf("refusal %q, want w and its address named", why)
	}
	steal := workerClaimOf("m", 4, 0)
	steal.TokenID, steal.Proof = masterToken.ID, gossip.SeatProof(masterToken.Verifier, "m", steal.SignKey)
	steal.Addr = wAddr
	if got := Plan(s, claims(steal), testPlan(1), "m", tick); len(got) != 0 {
		t.Errorf("m's address update onto w's address was granted: %v", got)
	}
	moved := claimOf("w", 5, 0)
	moved.Addr = netip.MustParseAddr("192.0.2.9")
	apply(s, Plan(s, claims(moved), testPlan(1), "m", tick))
	evil.Time = 6
	if got := Plan(s, claims(evil), testPlan(1), "m", tick); len(got) != 1 || got[0].Addr != wAddr {
		t.Errorf("w's old address, free since w moved: %v", got)
	}
	for _, in := range []string{"10.0.0.1", "10.10.0.5"} { // the apiserver's service IP, a pod's
		evil.Addr, evil.Time = netip.MustParseAddr(in), 7
		if got := Plan(s, claims(evil), testPlan(1), "m", tick); len(got) != 0 {
			t.Errorf("a claim at %s was granted: %v", in, got)
		}
		if why := Refusal(s, evil); !strings.Contains(why, "inside the cluster's") {
			t.Errorf("refusal of %s: %q", in, why)
		}
	}
	lo := func(name string, at int64) gossip.Claim {
		c := claimOf(name, at, 0)
		c.Addr = netip.MustParseAddr("127.0.0.1")
		return c
	}
	apply(s, Plan(s, claims(lo("l1", 7)), testPlan(1), "m", tick))
	if got := Plan(s, claims(lo("l2", 8)), testPlan(1), "m", tick); len(got) != 1 {
		t.Errorf("a second node on loopback: %v", got)
	}
}

func TestPlanGivesBackWantedSubnet(t *testing.T) {
	s := emptySnap(1)
	w := claimOf("w", 2, 0)
	w.WantCIDR = netip.MustParsePrefix("10.10.7.0/24")
	bad := claimOf("bad", 3, 0)
	bad.WantCIDR = netip.MustParsePrefix("192.168.0.0/24")
	apply(s, Plan(s, claims(claimOf("m", 1, 0), w, bad), testPlan(1), "m", counter()))
	if got := s.Assignments["w"].PodCIDR; got != netip.MustParsePrefix("10.10.7.0/24") {
		t.Errorf("w got %s, wanted its old 10.10.7.0/24", got)
	}
	if got := s.Assignments["bad"].PodCIDR; got != netip.MustParsePrefix("10.10.1.0/24") {
		t.Errorf("an out-of-range wish gave %s", got)
	}
}

func TestPlanResolvesDuplicates(t *testing.T) {
	s := emptySnap(3)
	s.Assignments["m"] = gossip.Assignment{Node: "m", PodCIDR: netip.MustParsePrefix("10.10.0.0/24"), Seat: 0, Version: 1, By: "m"}
	// Both sides of a partition gave 10.10.1.0/24 and seat 1 away.
	s.Assignments["a"] = gossip.Assignment{Node: "a", PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), Seat: 1, Version: 5, By: "m"}
	s.Assignments["b"] = gossip.Assignment{Node: "b", SignKey: gossip.Key{7}, PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), Seat: 1, Version: 7, By: "x"}
	got := Plan(s, nil, testPlan(3), "m", func() uint64 { return 10 })
	apply(s, got)
	if len(got) != 1 || got[0].Node != "b" {
		t.Fatalf("want one decision moving b, got %v", got)
	}
	if s.Assignments["a"].PodCIDR != netip.MustParsePrefix("10.10.1.0/24") || s.Assignments["a"].Seat != 1 {
		t.Errorf("older holder a lost: %v", s.Assignments["a"])
	}
	if b := s.Assignments["b"]; b.PodCIDR == netip.MustParsePrefix("10.10.1.0/24") || b.Seat != 2 || b.SignKey != (gossip.Key{7}) {
		t.Errorf("b: %v", b)
	}
}

func TestPlanReleasesRemovedNodes(t *testing.T) {
	s := emptySnap(1)
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "m", counter()))
	s.Nodes["w"] = gossip.NodeInfo{Name: "w", Removed: true}
	apply(s, Plan(s, nil, testPlan(1), "m", counter()))
	if a := s.Assignments["w"]; !a.Released || a.Seat != Worker || a.PodCIDR.IsValid() {
		t.Fatalf("removed node not released: %v", a)
	}
	apply(s, Plan(s, claims(claimOf("n", 9, 0)), testPlan(1), "m", counter()))
	if got := s.Assignments["n"].PodCIDR; got != netip.MustParsePrefix("10.10.1.0/24") {
		t.Errorf("released subnet not reused: %s", got)
	}
	// The released name is free again, for a new machine.
	apply(s, Plan(s, claims(claimOf("w", 10, 5)), testPlan(1), "m", counter()))
	if a := s.Assignments["w"]; !a.Active() || a.SignKey[31] != 5 {
		t.Errorf("released name not given to its new claimant: %v", a)
	}
}

func TestMastersIgnoresSeatsOutsideThePlan(t *testing.T) {
	s := emptySnap(1)
	s.Assignments["m"] = gossip.Assignment{Node: "m", Seat: 0, Version: 1}
	s.Assignments["w"] = gossip.Assignment{Node: "w", Seat: 3, Version: 1 << 40}
	s.Assignments["v"] = gossip.Assignment{Node: "v", Seat: 0, Version: 9}
	if m := Masters(s); fmt.Sprint(m) != "[m]" {
		t.Errorf("masters %v, want [m]", m)
	}
}

func TestAllocator(t *testing.T) {
	s := emptySnap(3)
	if got := Allocator(s, map[string]bool{"a": true}); got != "" {
		t.Errorf("no masters yet: %q", got)
	}
	apply(s, Plan(s, claims(claimOf("a", 1, 0), claimOf("b", 2, 0), claimOf("c", 3, 0)), testPlan(3), "a", counter()))
	for _, n := range []string{"a", "b", "c"} {
		s.Nodes[n] = gossip.NodeInfo{Name: n, HasSecrets: n != "b"}
	}
	if got := Allocator(s, map[string]bool{"a": true, "b": true, "c": true}); got != "a" {
		t.Errorf("all alive: %s", got)
	}
	if got := Allocator(s, map[string]bool{"b": true, "c": true}); got != "c" {
		t.Errorf("first master dead, second without keys: %s, want c", got)
	}
}

func TestSubnet(t *testing.T) {
	for i, want := range map[int]string{0: "10.10.0.0/24", 1: "10.10.1.0/24", 255: "10.10.255.0/24"} {
		if got := Subnet(netip.MustParsePrefix("10.10.0.0/16"), 24, i).String(); got != want {
			t.Errorf("%d: %s, want %s", i, got, want)
		}
	}
	if got := Subnet(netip.MustParsePrefix("10.10.0.0/16"), 26, 5).String(); got != "10.10.1.64/26" {
		t.Errorf("/26 #5: %s", got)
	}
}

// A dead master released by `knode remove`: its seat and subnet are free for
// the next claimant, and it is no longer a master.
func TestReleaseFreesSeatAndSubnet(t *testing.T) {
	s := emptySnap(1)
	apply(s, Plan(s, claims(claimOf("m", 1, 0), claimOf("w", 2, 0)), testPlan(1), "w", counter()))
	if _, ok := Release(s, "nobody"); ok {
		t.Fatal("released a node that holds nothing")
	}
	d, ok := Release(s, "m")
	if !ok || !d.Released || d.Seat != Worker || d.PodCIDR.IsValid() || d.SignKey != s.Assignments["m"].SignKey {
		t.Fatalf("Release(m) = %v, %v", d, ok)
	}
	d.Version = 100
	apply(s, []gossip.Assignment{d})
	if IsMaster(s, "m") {
		t.Fatal("a released master still holds its seat")
	}
	if _, ok := Release(s, "m"); ok {
		t.Fatal("released twice")
	}
	apply(s, Plan(s, claims(claimOf("n", 9, 0)), testPlan(1), "w", counter()))
	if n := s.Assignments["n"]; n.Seat != 0 || n.PodCIDR != netip.MustParsePrefix("10.10.0.0/24") {
		t.Errorf("the released seat and subnet not given to the next claimant: %v", n)
	}
}

// A released seat goes to the oldest alive worker; a dead master's seat is
// never taken.
func TestPromotions(t *testing.T) {
	s := emptySnap(2)
	apply(s, Plan(s, claims(claimOf("m0", 1, 0), claimOf("m1", 2, 0), claimOf("w1", 3, 0), claimOf("w2", 4, 0)), testPlan(2), "m0", counter()))
	alive := map[string]bool{"m0": true, "m1": false, "w1": true, "w2": true}
	if p := Promotions(s, alive); len(p) != 0 {
		t.Fatalf("promoted while every seat is held (m1 dead, not released): %v", p)
	}
	d, _ := Release(s, "m1")
	d.Version = 100
	apply(s, []gossip.Assignment{d})
	alive["w1"] = false // the oldest worker is dead: the next one is promoted
	p := Promotions(s, alive)
	if len(p) != 1 || p[0].Node != "w2" || p[0].Seat != 1 || p[0].PodCIDR != s.Assignments["w2"].PodCIDR || p[0].SignKey != s.Assignments["w2"].SignKey {
		t.Fatalf("Promotions = %v, want w2 into seat 1 with its subnet and keys", p)
	}
	p[0].Version = 101
	apply(s, p)
	if !IsMaster(s, "w2") || len(Promotions(s, map[string]bool{"w1": true})) != 0 {
		t.Fatalf("after the promotion: masters %v", Masters(s))
	}
}

// TestPromotionNeedsAMasterToken: a free seat is offered only to a worker
// admitted with a master token, however old the others are.
func TestPromotionNeedsAMasterToken(t *testing.T) {
	s := emptySnap(3)
	s.Assignments["m"] = gossip.Assignment{Node: "m", PodCIDR: netip.MustParsePrefix("10.10.0.0/24"), Seat: 0, MaySeat: true, Version: 1, By: "m"}
	s.Assignments["old"] = gossip.Assignment{Node: "old", PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), Seat: Worker, Version: 2, By: "m"}
	s.Assignments["eligible"] = gossip.Assignment{Node: "eligible", PodCIDR: netip.MustParsePrefix("10.10.2.0/24"), Seat: Worker, MaySeat: true, Version: 3, By: "m"}
	got := Promotions(s, map[string]bool{"m": true, "old": true, "eligible": true})
	if len(got) != 1 || got[0].Node != "eligible" || got[0].Seat != 1 {
		t.Fatalf("promotions %+v, want eligible to seat 1 alone", got)
	}
}

// TestTokenUseLimit: a token with a use limit admits that many new names,
// whoever decides and in whatever batches; a released name keeps its use
// spent; an admitted node's address update spends nothing.
func TestTokenUseLimit(t *testing.T) {
	s := emptySnap(1)
	limited := gossip.TokenRecord{ID: [8]byte{7}, Verifier: gossip.Key{8}, Uses: 2, By: "m"}
	s.Tokens[limited.Name()] = limited
	proving := func(name string, at int64) gossip.Claim {
		c := workerClaimOf(name, at, 0)
		c.TokenID, c.Proof = limited.ID, gossip.SeatProof(limited.Verifier, name, c.SignKey)
		return c
	}
	apply(s, Plan(s, claims(proving("w1", 1)), testPlan(1), "m", counter()))
	// A second allocator (after a failover) plans the rest from the state.
	cl := claims(proving("w2", 2), proving("w3", 3))
	apply(s, Plan(s, cl, testPlan(1), "m2", counter()))
	for _, n := range []string{"w1", "w2"} {
		if a := s.Assignments[n]; !a.Active() || a.Token != limited.ID {
			t.Errorf("%s: %+v, want admitted and counted against the token", n, a)
		}
	}
	if a, ok := s.Assignments["w3"]; ok {
		t.Fatalf("a third machine admitted with a token for two: %+v", a)
	}
	if why := Refusal(s, cl["w3"]); !strings.Contains(why, "admitted 2 machines") {
		t.Errorf("refusal of the third: %q", why)
	}
	// w1 moves: its address update is no new use, and w3 stays out.
	moved := proving("w1", 4)
	moved.Addr = netip.MustParseAddr("192.0.2.9")
	apply(s, Plan(s, claims(moved, proving("w3", 5)), testPlan(1), "m", counter()))
	if a := s.Assignments["w1"]; a.Addr != moved.Addr || a.Token != limited.ID {
		t.Errorf("w1 after moving: %+v", a)
	}
	if _, ok := s.Assignments["w3"]; ok {
		t.Error("w3 admitted after an address update")
	}
	// w2 is removed: its use stays spent.
	rel, _ := Release(s, "w2")
	apply(s, []gossip.Assignment{rel})
	apply(s, Plan(s, claims(proving("w3", 6)), testPlan(1), "m", counter()))
	if _, ok := s.Assignments["w3"]; ok {
		t.Error("a released name gave its use back")
	}
	if got := gossip.TokenUses(s.Assignments)[limited.ID]; got != 2 {
		t.Errorf("%d uses counted, want 2", got)
	}
}
