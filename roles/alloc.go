// Package roles decides what each node is: which nodes hold the master seats,
// which pod subnet each node owns, and who the current allocator is. The
// decisions are pure functions of the replicated gossip state and the claims
// the allocator has received, so every member computes the same answer; the
// agent runs them, signs the result and acts on it.
package roles

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"knode.dev/knode/config"
	"knode.dev/knode/gossip"
)

// Worker is the Seat of a node that holds no master seat.
const Worker = -1

// Masters lists the holders of master seats in seat order (dead ones
// included: seats are sticky). Only seats the cluster's plan has count, and a
// seat held twice (both sides of a healed partition) counts once, for the
// older decision.
func Masters(s gossip.Snapshot) []string {
	limit := 0
	if s.Cluster != nil {
		limit = s.Cluster.Cluster.Masters
	}
	var seats []gossip.Assignment
	for _, a := range s.Assignments {
		if a.Active() && a.Seat >= 0 && a.Seat < limit {
			seats = append(seats, a)
		}
	}
	slices.SortFunc(seats, func(a, b gossip.Assignment) int {
		return cmp.Or(cmp.Compare(a.Seat, b.Seat), olderFirst(a, b))
	})
	out := make([]string, 0, len(seats))
	for i, a := range seats {
		if i > 0 && seats[i-1].Seat == a.Seat {
			continue
		}
		out = append(out, a.Node)
	}
	return out
}

// IsMaster reports whether name holds a master seat.
func IsMaster(s gossip.Snapshot, name string) bool { return slices.Contains(Masters(s), name) }

// Allocator is the node that makes decisions now: the first alive master, in
// seat order, that holds the master keys (only they can sign a decision).
// Empty when there is none, and in a cluster with no master yet, where the
// node that created the cluster seats itself.
func Allocator(s gossip.Snapshot, alive map[string]bool) string {
	for _, m := range Masters(s) {
		if alive[m] && s.Nodes[m].HasSecrets {
			return m
		}
	}
	return ""
}

// olderFirst orders two decisions by age: the earlier decision keeps a
// contested subnet or seat.
func olderFirst(a, b gossip.Assignment) int {
	return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.By, b.By), cmp.Compare(a.Node, b.Node))
}

// Plan returns the decisions the allocator should publish now, unsigned:
// (a free master seat goes only to a claimant that proves a master token:
// see gossip.MaySeat)
// releases for nodes that announced their removal, fixes for subnets or seats
// held twice (after a partition heals), new decisions for valid claims of
// unbound (or released) names, and address updates for claims of bound
// names with the same key. A claim for a name bound to another key gets
// nothing (the agent refuses it). tick returns a fresh Lamport time for each
// decision.
func Plan(s gossip.Snapshot, claims map[string]gossip.Claim, c config.Cluster, by string, tick func() uint64) []gossip.Assignment {
	s.Assignments = maps.Clone(s.Assignments) // the snapshot is shared: plan on a copy
	var out []gossip.Assignment
	decide := func(a gossip.Assignment) {
		a.Version, a.By = tick(), by
		s.Assignments[a.Node] = a
		out = append(out, a)
	}
	// Releases: `knode reset` marked the node removed (its own signed record).
	for _, name := range slices.Sorted(maps.Keys(s.Nodes)) {
		if a, ok := s.Assignments[name]; ok && s.Nodes[name].Removed && !a.Released {
			decide(released(a))
		}
	}
	// Duplicates: the older decision keeps the subnet or seat; the newer
	// holder is decided again below, with the keys and address it had.
	holders := map[netip.Prefix]gossip.Assignment{}
	seats := map[int]gossip.Assignment{}
	var redo []gossip.Assignment
	for _, a := range ByAge(s.Assignments) {
		if !a.Active() {
			continue
		}
		_, cidrTaken := holders[a.PodCIDR]
		_, seatTaken := seats[a.Seat]
		if cidrTaken || (a.Seat >= 0 && seatTaken) {
			redo = append(redo, a)
			continue
		}
		holders[a.PodCIDR] = a
		if a.Seat >= 0 {
			seats[a.Seat] = a
		}
	}
	var uses map[[8]byte]int // by token, counted when a claim needs it
	place := func(a gossip.Assignment, want netip.Prefix, old gossip.Assignment, hadOld, maySeat bool) {
		a.Seat, a.MaySeat = Worker, maySeat
		if maySeat {
			a.Seat = freeSeat(seats, c.Masters)
		}
		cidr, err := pickCIDR(c, holders, want)
		if err != nil {
			if hadOld && old.Error == err.Error() && old.SignKey == a.SignKey {
				return // already told
			}
			a.Seat, a.Error = Worker, err.Error()
			decide(a)
			return
		}
		a.PodCIDR = cidr
		decide(a)
		holders[cidr] = a
		if a.Seat >= 0 {
			seats[a.Seat] = a
		}
	}
	for _, a := range redo {
		place(gossip.Assignment{Node: a.Node, SignKey: a.SignKey, BoxKey: a.BoxKey, Addr: a.Addr, Port: a.Port, Token: a.Token}, netip.Prefix{}, a, true, a.MaySeat || a.Seat >= 0)
	}
	// Claims, oldest first.
	for _, cl := range sortedClaims(claims) {
		old, hadOld := s.Assignments[cl.Name]
		switch {
		case hadOld && old.Active() && old.SignKey != cl.SignKey:
			continue // bound to another key: refused
		case AddrHolder(s, cl.Name, cl.Addr) != "" || InClusterRange(c, cl.Addr) != "":
			continue // another node's address, or one of the cluster's own ranges: refused
		case hadOld && old.Active():
			if !Answered(old, cl) {
				upd := old
				upd.Addr, upd.Port, upd.BoxKey = cl.Addr, cl.Port, cl.BoxKey
				decide(upd)
			}
			continue
		}
		tok, proven := gossip.ProvenToken(s.Tokens, cl)
		if !proven {
			continue // no valid token: refused
		}
		if uses == nil {
			uses = gossip.TokenUses(s.Assignments)
		}
		if tok.UsedUp(uses[tok.ID]) {
			continue // the token admitted all it may: refused
		}
		uses[tok.ID]++
		place(gossip.Assignment{Node: cl.Name, SignKey: cl.SignKey, BoxKey: cl.BoxKey, Addr: cl.Addr, Port: cl.Port, Token: tok.ID}, cl.WantCIDR, old, hadOld,
			tok.Master)
	}
	return out
}

// Promotions fills the master seats left free (a master removed or reset)
// with the oldest alive workers admitted with a master token (MaySeat), one
// decision per seat: a worker token never leads to a seat. The node keeps its
// keys, address and subnet and takes the seat. A seat whose holder is merely
// dead is not free: seats are sticky until released. The caller stamps,
// signs and publishes the decisions.
func Promotions(s gossip.Snapshot, alive map[string]bool) []gossip.Assignment {
	if s.Cluster == nil {
		return nil
	}
	held := map[int]bool{}
	for _, m := range Masters(s) {
		held[s.Assignments[m].Seat] = true
	}
	var workers []gossip.Assignment
	for _, a := range ByAge(s.Assignments) {
		if a.Active() && a.Seat == Worker && a.MaySeat && alive[a.Node] && !s.Nodes[a.Node].Removed {
			workers = append(workers, a)
		}
	}
	var out []gossip.Assignment
	for seat := 0; seat < s.Cluster.Cluster.Masters && len(workers) > 0; seat++ {
		if held[seat] {
			continue
		}
		a := workers[0]
		workers = workers[1:]
		a.Seat = seat
		out = append(out, a)
	}
	return out
}

// Release is the decision that frees name's subnet and seat when the node
// cannot announce its own removal (`knode remove` of a dead node); false when
// name holds neither. The caller stamps, signs and publishes it.
func Release(s gossip.Snapshot, name string) (gossip.Assignment, bool) {
	a, ok := s.Assignments[name]
	if !ok || a.Released {
		return gossip.Assignment{}, false
	}
	return released(a), true
}

// released is the decision that frees a's subnet and seat; the keys stay
// bound, so the removed node's last record still verifies.
func released(a gossip.Assignment) gossip.Assignment {
	return gossip.Assignment{Node: a.Node, SignKey: a.SignKey, BoxKey: a.BoxKey, Seat: Worker, Released: true, Token: a.Token}
}

// Answered reports whether decision d already answers claim c: it binds the
// claimant's key and is either its place at the claimed address or the
// reason it has none. A claim that is not answered asks for a decision.
func Answered(d gossip.Assignment, c gossip.Claim) bool {
	return d.SignKey == c.SignKey && !d.Released &&
		(d.Error != "" || (d.Addr == c.Addr && d.Port == c.Port && d.BoxKey == c.BoxKey))
}

// AddrHolder names the other node whose active decision binds addr, or "".
// A node's address goes into its kubelet serving certificate, the routes to
// its subnet and the firewall's member set, so a claim for an address that
// another node holds (a token holder after that node's certificates or
// traffic) is refused, until that node moved away or was removed. Loopback
// addresses, which no other machine can reach, are shared by the agents of
// one test process.
func AddrHolder(s gossip.Snapshot, name string, addr netip.Addr) string {
	if addr.IsLoopback() {
		return ""
	}
	for other, a := range s.Assignments { // one holder at most: no order needed
		if other != name && a.Active() && a.Addr == addr {
			return other
		}
	}
	return ""
}

// InClusterRange names the cluster range that holds addr ("pod range
// 10.10.0.0/16", "service range 10.0.0.0/16"), or "". A node's address goes
// into the serving certificate a master signs for it: one inside the service
// range (the apiserver's own 10.0.0.1) or a pod's would let its holder
// present a cluster-signed certificate for an address it does not own.
func InClusterRange(c config.Cluster, addr netip.Addr) string {
	switch {
	case c.PodCIDR.Contains(addr):
		return "pod range " + c.PodCIDR.String()
	case c.ServiceCIDR.Contains(addr):
		return "service range " + c.ServiceCIDR.String()
	}
	return ""
}

// Refusal says why a claim cannot be granted, or "" when it can.
func Refusal(s gossip.Snapshot, cl gossip.Claim) string {
	old, ok := s.Assignments[cl.Name]
	switch {
	case ok && old.Active() && old.SignKey != cl.SignKey:
		return fmt.Sprintf("the node name %q is held by another machine (its key differs): choose another --node-name, or free the name first (`knode reset` on that machine, or `knode remove %s` once it is gone)", cl.Name, cl.Name)
	}
	if s.Cluster != nil {
		if r := InClusterRange(s.Cluster.Cluster, cl.Addr); r != "" {
			return fmt.Sprintf("the address %s is inside the cluster's %s: give this machine an address outside it (--advertise)", cl.Addr, r)
		}
	}
	if other := AddrHolder(s, cl.Name, cl.Addr); other != "" {
		return fmt.Sprintf("the address %s is node %s's (its decision binds it): give this machine another address (--advertise), or free it first (`knode reset` on %s, or `knode remove %s` once it is gone)", cl.Addr, other, other, other)
	}
	if ok && old.Active() {
		return "" // its own name: an address update needs no token
	}
	if _, known := s.Tokens[hex.EncodeToString(cl.TokenID[:])]; !known {
		return "" // its record may still be on its way here: the claim is asked again
	}
	tok, proven := gossip.ProvenToken(s.Tokens, cl)
	if !proven {
		return "the join token expired or was deleted before this machine was given its place: make one with `knode token create` on a master and join again"
	}
	if used := gossip.TokenUses(s.Assignments)[tok.ID]; tok.UsedUp(used) {
		return fmt.Sprintf("the join token %s has admitted %d machines, as many as it may (--uses): make another with `knode token create --uses N` on a master and join again", tok.Name(), used)
	}
	return ""
}

func sortedClaims(m map[string]gossip.Claim) []gossip.Claim {
	out := make([]gossip.Claim, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b gossip.Claim) int { return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Name, b.Name)) })
	return out
}

// ByAge lists decisions oldest first: the order in which a contested subnet
// or seat goes to the older decision.
func ByAge(m map[string]gossip.Assignment) []gossip.Assignment {
	out := make([]gossip.Assignment, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, olderFirst)
	return out
}

func freeSeat(seats map[int]gossip.Assignment, masters int) int {
	for i := range masters {
		if _, taken := seats[i]; !taken {
			return i
		}
	}
	return Worker
}

// pickCIDR returns want when it is a free subnet of the pod range, else the
// lowest free subnet, else an error saying the range is exhausted.
func pickCIDR(c config.Cluster, held map[netip.Prefix]gossip.Assignment, want netip.Prefix) (netip.Prefix, error) {
	if gossip.InRange(c, want) {
		if _, taken := held[want]; !taken {
			return want, nil
		}
	}
	n := c.NodeCapacity()
	for i := range n {
		p := Subnet(c.PodCIDR, c.NodeCIDRMask, i)
		if _, taken := held[p]; !taken {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("pod range %s is exhausted: all %d /%d subnets are held; create the cluster with a larger --pod-cidr or a longer --node-cidr-mask, or `knode reset` unused nodes",
		c.PodCIDR, n, c.NodeCIDRMask)
}

// Subnet is the i-th subnet of length bits inside pod.
func Subnet(pod netip.Prefix, bits, i int) netip.Prefix {
	a := pod.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - bits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
}
