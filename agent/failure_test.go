package agent

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// Failure is normal: the allocator, another master or a worker can die at
// any moment, and a partition can heal at any moment. These tests kill and
// cut real agents in the middle of concurrent joins and check what the
// cluster must still agree on once it settles: every live joiner has a
// decision, no subnet or seat is held twice, the masters keep their seats
// (a dead master's included), and a decision the survivors knew is never
// undone.

// formMasters starts a cluster of three masters, n00 to n02, joined one
// after another so that join order decides the seats.
func formMasters(t *testing.T) *testCluster {
	t.Helper()
	tc := newTestCluster(t, testPlan(3))
	tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	return tc
}

// names is prefix00 .. prefix(n-1).
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// joinAll starts every name at once with tok, the i-th through via(i), and
// returns a function that waits for the starts and fails the test on an
// error.
func (tc *testCluster) joinAll(joiners []string, via func(i int) []string, tok pki.Token) (wait func()) {
	var wg sync.WaitGroup
	errs := make(chan error, len(joiners))
	for i, name := range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tc.start(name, via(i), nil, tok, false); err != nil {
				errs <- fmt.Errorf("join %s via %v: %w", name, via(i), err)
				return
			}
		}()
	}
	return func() {
		tc.t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			tc.t.Fatal(err)
		}
	}
}

// decided lists the names of joiners that a holds an active decision for.
func decided(a *Agent, joiners []string) []string {
	snap := a.Snapshot()
	var out []string
	for _, n := range joiners {
		if as, ok := snap.Assignments[n]; ok && as.Active() {
			out = append(out, n)
		}
	}
	return out
}

// waitAllAssigned waits until every live agent among names holds its decision.
func (tc *testCluster) waitAllAssigned(t *testing.T, timeout time.Duration, joiners []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	live := tc.live()
	for _, n := range joiners {
		a, ok := live[n]
		if !ok {
			continue
		}
		if as, err := a.WaitAssigned(ctx); err != nil || !as.PodCIDR.IsValid() {
			t.Fatalf("%s never got its decision: %s %v\n%s", n, brief(as), err, view(a.Status()))
		}
	}
}

// checkAgreement checks, on every live agent's copy of the state, that no
// subnet and no seat is held twice, that the seats are exactly wantSeats
// (sticky: dead masters keep theirs), and that every live node listed in
// joiners holds an active decision that its own agent also holds. It
// returns one live agent's copy.
func (tc *testCluster) checkAgreement(t *testing.T, wantSeats map[string]int, joiners []string) gossip.Snapshot {
	t.Helper()
	tc.waitSameRecords(t, 15*time.Second)
	var any gossip.Snapshot
	live := tc.live()
	for _, viewer := range slices.Sorted(maps.Keys(live)) {
		snap := live[viewer].Snapshot()
		any = snap
		cidrs := map[netip.Prefix]string{}
		seats := map[string]int{}
		for _, as := range snap.Assignments {
			if !as.Active() {
				continue
			}
			if other, dup := cidrs[as.PodCIDR]; dup {
				t.Errorf("%s sees %s held by both %s and %s", viewer, as.PodCIDR, other, as.Node)
			}
			cidrs[as.PodCIDR] = as.Node
			if as.Seat >= 0 {
				seats[as.Node] = as.Seat
			}
		}
		if fmt.Sprint(seats) != fmt.Sprint(wantSeats) {
			t.Errorf("%s sees the seats %v, want %v", viewer, seats, wantSeats)
		}
		for _, n := range joiners {
			a, alive := live[n]
			if !alive {
				continue
			}
			as, ok := snap.Assignments[n]
			own, _ := a.Assignment()
			if !ok || !as.Active() || as.Sig != own.Sig {
				t.Errorf("%s holds for %s the decision %s, %s holds %s", viewer, n, brief(as), n, brief(own))
			}
		}
	}
	return any
}

// waitSameRecords waits until every live agent holds the same records (equal
// digests): views can agree while two nodes still hold different decisions
// that give one node the same subnet.
func (tc *testCluster) waitSameRecords(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		digests := map[uint64][]string{}
		for name, a := range tc.live() {
			dg, _ := a.state.Digest()
			digests[dg] = append(digests[dg], name)
		}
		if len(digests) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the live agents still hold different records after %s: %v", timeout, digests)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// threeSeats is the seats of formMasters' cluster.
var threeSeats = map[string]int{"n00": 0, "n01": 1, "n02": 2}

// The allocator dies in the middle of ten concurrent joins (after it decided
// for some joiners, before it decided for all): the next master in seat order
// holds the claims too and decides for the rest.
func TestAllocatorDiesDuringJoins(t *testing.T) {
	tc := formMasters(t)
	joiners := names("j", 10)
	n00Addr, others := tc.addr("n00"), []string{tc.addr("n01"), tc.addr("n02")}
	for _, n := range joiners {
		others = append(others, tc.reserve(n))
	}
	// Through the masters that survive; master tokens, so that a joiner
	// taking the dead master's seat would show.
	wait := tc.joinAll(joiners, func(i int) []string { return []string{[]string{"n01", "n02"}[i%2], []string{"n02", "n01"}[i%2]} },
		tc.masterToken)
	n00, n01 := tc.live()["n00"], tc.live()["n01"]
	// The instant it has decided for a joiner, the allocator is cut off,
	// then dies: its last decision may have reached no one.
	deadline := time.Now().Add(20 * time.Second)
	for len(decided(n00, joiners)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("n00 decided for no joiner")
		}
		time.Sleep(time.Millisecond)
	}
	tc.net.partition([]string{n00Addr}, others)
	tc.kill("n00")
	before := decided(n00, joiners)
	t.Logf("n00 died after deciding for %v", before)
	if len(before) == len(joiners) {
		t.Fatalf("n00 decided for every joiner before it died: the test did not kill it in the middle")
	}
	wait()
	// What n01 knew when the allocator died must stand.
	known := n01.Snapshot().Assignments
	tc.waitAllAssigned(t, 20*time.Second, joiners)
	tc.waitConverged(20*time.Second, 13)
	snap := tc.checkAgreement(t, threeSeats, joiners)
	if m := statusOf(t, n01, "n00"); m.State != gossip.StateDead || len(m.Roles) != 1 || m.Roles[0] != "master" {
		t.Errorf("the dead allocator is %s %v, want a dead master", m.State, m.Roles)
	}
	for _, n := range joiners {
		if k, ok := known[n]; ok && k.Sig != snap.Assignments[n].Sig {
			t.Errorf("%s's decision changed after the allocator died: %s by %s, then %s by %s", n, k.PodCIDR, k.By, snap.Assignments[n].PodCIDR, snap.Assignments[n].By)
		}
		if !slices.Contains(before, n) && snap.Assignments[n].By == "n00" {
			t.Errorf("%s: decided by n00 after its death?", n)
		}
	}
}

// A master that is not the allocator and a worker die at random moments
// while ten nodes join. Half the joiners are admitted through the master
// that dies (it may die during their admission, or between it and their
// gossip join): they carry on through their second peer.
func TestMasterAndWorkerDieDuringJoins(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	tc := formMasters(t)
	joiners := names("j", 10)
	wait := tc.joinAll(joiners, func(i int) []string { return []string{[]string{"n02", "n01"}[i%2], "n00"} },
		tc.masterToken)
	masterAt, workerAt := time.Duration(rnd.IntN(400))*time.Millisecond, time.Duration(rnd.IntN(400))*time.Millisecond
	var killed sync.WaitGroup
	killed.Add(2)
	go func() { // the master
		defer killed.Done()
		time.Sleep(masterAt)
		tc.kill("n02")
	}()
	victim := make(chan string, 1)
	go func() { // a worker: the first joiner holding its decision after workerAt
		defer killed.Done()
		time.Sleep(workerAt)
		for {
			for _, n := range joiners {
				if a, ok := tc.live()[n]; ok {
					if _, ok := a.Assignment(); ok {
						tc.kill(n)
						victim <- n
						return
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	wait()
	killed.Wait()
	dead := <-victim
	n00 := tc.live()["n00"]
	t.Logf("killed n02 after %s and %s after %s; n00 had decided for %v", masterAt, dead, workerAt, decided(n00, joiners))
	waitState(t, n00, "n02", gossip.StateDead)
	waitState(t, n00, dead, gossip.StateDead)
	tc.waitAllAssigned(t, 20*time.Second, joiners)
	tc.waitConverged(20*time.Second, 13)
	tc.checkAgreement(t, threeSeats, joiners)
	for _, n := range []string{"n02", dead} {
		if m := statusOf(t, n00, n); m.State != gossip.StateDead || m.PodCIDR == "" {
			t.Errorf("%s is %s with %q: a dead node keeps its subnet", n, m.State, m.PodCIDR)
		}
	}
}

// The cluster splits while nodes join: the side with n00 (the allocator,
// holding the keys) is the minority, n01 and n02 the majority; each side
// keeps deciding. After the heal, a subnet both sides gave away stays with
// the older decision, the other node is moved, and no node is left without
// a decision.
func TestPartitionDuringJoins(t *testing.T) {
	tc := formMasters(t)
	joiners := names("j", 8)
	late := []string{"a0", "b0"} // join after the split, one on each side
	sideA := []string{tc.addr("n00"), tc.reserve("a0")}
	sideB := []string{tc.addr("n01"), tc.addr("n02"), tc.reserve("b0")}
	for i, n := range joiners {
		if i%2 == 0 {
			sideA = append(sideA, tc.reserve(n))
		} else {
			sideB = append(sideB, tc.reserve(n))
		}
	}
	// Everyone joins through n00's side or n01's, which are one cluster
	// until the split.
	wait := tc.joinAll(joiners, func(i int) []string {
		if i%2 == 0 {
			return []string{"n00"}
		}
		return []string{"n01", "n02"}
	}, tc.masterToken)
	n00, n01 := tc.live()["n00"], tc.live()["n01"]
	waitFor(t, 20*time.Second, "n00 deciding for a joiner", func() bool { return len(decided(n00, joiners)) > 0 })
	tc.net.partition(sideA, sideB)
	t.Logf("split after n00 decided for %v", decided(n00, joiners))
	wait()
	waitState(t, n01, "n00", gossip.StateDead)
	waitState(t, n00, "n01", gossip.StateDead)
	tc.join("a0", "n00")
	tc.join("b0", "n01")
	all := append(slices.Clone(joiners), late...)
	tc.waitAllAssigned(t, 20*time.Second, all)

	// Before the heal: the decision for each node that will win (the newer
	// of what the two sides hold), and the subnets that two of those give
	// away.
	survivors := map[string]gossip.Assignment{}
	sides := ""
	for name, a := range tc.live() {
		snap := a.Snapshot()
		for n, as := range snap.Assignments {
			if old, ok := survivors[n]; !ok || as.Newer(old) {
				survivors[n] = as
			}
		}
		if name == "n00" || name == "n01" {
			sides += "\n" + name + "'s side:"
			for _, n := range slices.Sorted(maps.Keys(snap.Assignments)) {
				sides += "\n  " + n + " " + brief(snap.Assignments[n])
			}
		}
	}
	byCIDR := map[netip.Prefix][]gossip.Assignment{}
	for _, as := range survivors {
		byCIDR[as.PodCIDR] = append(byCIDR[as.PodCIDR], as)
	}
	dups := 0
	for _, holders := range byCIDR {
		if len(holders) > 1 {
			dups++
		}
	}
	if dups == 0 {
		t.Fatalf("no subnet was given away on both sides: nothing to resolve%s", sides)
	}

	tc.net.heal()
	tc.waitConverged(30*time.Second, 13)
	defer func() {
		if t.Failed() {
			t.Logf("before the heal:%s", sides)
		}
	}()
	tc.waitAllAssigned(t, 10*time.Second, all)
	snap := tc.checkAgreement(t, threeSeats, all)
	for cidr, holders := range byCIDR {
		if len(holders) < 2 {
			// Uncontested: sticky.
			if got := snap.Assignments[holders[0].Node]; got.PodCIDR != cidr {
				t.Errorf("%s held %s alone before the heal, and %s after it (%s)", holders[0].Node, cidr, got.PodCIDR, brief(got))
			}
			continue
		}
		slices.SortFunc(holders, func(a, b gossip.Assignment) int {
			return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.By, b.By), cmp.Compare(a.Node, b.Node))
		})
		if got := snap.Assignments[holders[0].Node]; got.PodCIDR != cidr {
			t.Errorf("%s was held by %v; the oldest decision (%s) lost it: now %s", cidr, nodesOf(holders), holders[0].Node, got.PodCIDR)
		}
		for _, h := range holders[1:] {
			if got := snap.Assignments[h.Node]; got.PodCIDR == cidr || !got.PodCIDR.IsValid() {
				t.Errorf("%s was held by %v; the newer holder %s was not moved: %s", cidr, nodesOf(holders), h.Node, got.PodCIDR)
			}
		}
	}
}

// brief is a decision in one short line.
func brief(a gossip.Assignment) string {
	if a.Node == "" {
		return "none"
	}
	return fmt.Sprintf("%s seat %d v%d by %s sig %x", a.PodCIDR, a.Seat, a.Version, a.By, a.Sig[:4])
}

func nodesOf(as []gossip.Assignment) string {
	var out []string
	for _, a := range as {
		out = append(out, a.Node+" "+brief(a))
	}
	return strings.Join(out, ", ")
}

// The allocator dies, nodes join while it is away (n01 decides for them),
// and it restarts from its data directory, as `knode agent` would (through
// the peers it saved), and more nodes join through it at once: it catches up
// before it decides, and no decision made while it was away is undone.
func TestRestartedAllocatorCatchesUp(t *testing.T) {
	tc := formMasters(t)
	n01 := tc.live()["n01"]
	tc.kill("n00")
	waitState(t, n01, "n00", gossip.StateDead)
	away := names("j", 5)
	tc.joinAll(away, func(i int) []string { return []string{"n01", "n02"} }, tc.masterToken)()
	tc.waitAllAssigned(t, 20*time.Second, away)
	madeAway := n01.Snapshot().Assignments
	for _, n := range away {
		if by := madeAway[n].By; by == "n00" {
			t.Fatalf("%s decided by the dead n00", n)
		}
	}
	// n00 comes back through the peers it saved; k00..k02 join through it
	// at once (the init node is the peer operators name).
	n00, err := tc.start("n00", SavedPeers(tc.dir("n00"), "n00"), nil, tc.token, true)
	if err != nil {
		t.Fatal(err)
	}
	later := names("k", 3)
	tc.joinAll(later, func(i int) []string { return []string{"n00"} }, tc.masterToken)()
	all := append(slices.Clone(away), later...)
	tc.waitAllAssigned(t, 20*time.Second, all)
	tc.waitConverged(20*time.Second, 11)
	snap := tc.checkAgreement(t, threeSeats, all)
	for _, n := range away {
		if snap.Assignments[n].Sig != madeAway[n].Sig {
			t.Errorf("%s's decision made while n00 was away (%s) was replaced by %s", n, brief(madeAway[n]), brief(snap.Assignments[n]))
		}
	}
	waitFor(t, 10*time.Second, "n00 allocating again", func() bool { return n00.isAllocator(n00.Snapshot(), n00.g.Alive()) })
}

// A joiner is admitted by a member that it then cannot reach for gossip
// (the member died, or the path broke, between the two steps): it joins
// through its other peers, and with no other peer it fails with an error
// that says what happened and leaves nothing behind.
func TestAdmissionPeerLostBeforeGossipJoin(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("w01", "n00")
	tc.waitConverged(10*time.Second, 2)
	// x reaches n00's admission, but its gossip never reaches n00.
	tc.net.partition([]string{tc.reserve("x")}, []string{tc.addr("n00")})
	_, err := tc.start("x", []string{"n00"}, nil, tc.token, false)
	if err == nil || !strings.Contains(err.Error(), "admitted") || strings.Contains(err.Error(), "get the token") {
		t.Fatalf("joining through an admission peer that stops answering: err = %v", err)
	}
	if tc.dir("x").Initialised() {
		t.Error("a failed join left an initialised data directory")
	}
	// With a second peer, the same join succeeds through it.
	tc.net.partition([]string{tc.reserve("x")}, []string{tc.addr("n00")})
	x, err := tc.start("x", []string{"n00", "w01"}, nil, tc.token, false)
	if err != nil {
		t.Fatalf("joining with a second peer: %v", err)
	}
	tc.net.heal() // its claims reach the allocator
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.WaitAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	tc.waitConverged(10*time.Second, 3)
}

// Every joiner sends its claim to all masters, so a master that becomes the
// allocator holds claims it never had to answer. One from a node that has
// gone since (here: x, which could not reach the old allocator, then died)
// must not be granted: the node would hold a subnet (and appear as a dead
// member) although it never got its place, and after a partition such a
// decision moves a live node that got its place on the other side.
func TestNewAllocatorIgnoresClaimsOfGoneNodes(t *testing.T) {
	tc := formMasters(t)
	n01 := tc.live()["n01"]
	tc.net.partition([]string{tc.reserve("x")}, []string{tc.addr("n00")})
	if _, err := tc.start("x", []string{"n01"}, nil, tc.token, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n01 holding x's claim", func() bool {
		n01.mu.Lock()
		defer n01.mu.Unlock()
		_, ok := n01.claims["x"]
		return ok
	})
	tc.kill("x")
	tc.kill("n00")
	waitState(t, n01, "n00", gossip.StateDead)
	// n01 allocates now: a new node gets its place from it.
	y := tc.join("y", "n01")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if as, err := y.WaitAssigned(ctx); err != nil || as.By != "n01" {
		t.Fatalf("y: %s %v", brief(as), err)
	}
	time.Sleep(time.Second) // a wrong decision would be made by now
	if as, ok := n01.Snapshot().Assignments["x"]; ok {
		t.Errorf("the new allocator gave the dead claimant x a place: %s", brief(as))
	}
}
