// Package roles decides what each node is: which nodes hold the master seats,
// which pod subnet each node owns, and who the current allocator is. The
// decisions are pure functions of the replicated gossip state, so every member
// computes the same answer; the Agent runs them and acts on the result.
package roles

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"knode.dev/knode/config"
	"knode.dev/knode/gossip"
)

// Worker is the Seat of a node that holds no master seat.
const Worker = -1

// Order sorts node records for seats: earliest JoinedAt first, ties by name.
func Order(nodes map[string]gossip.NodeInfo) []gossip.NodeInfo {
	out := make([]gossip.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b gossip.NodeInfo) int {
		return cmp.Or(cmp.Compare(a.JoinedAt, b.JoinedAt), cmp.Compare(a.Name, b.Name))
	})
	return out
}

func Active(a gossip.Assignment) bool { return !a.Released && a.Error == "" }

// Masters lists the holders of master seats in seat order (dead ones included:
// seats are sticky).
func Masters(s gossip.Snapshot) []string {
	var seats []gossip.Assignment
	for _, a := range s.Assignments {
		if Active(a) && a.Seat >= 0 {
			seats = append(seats, a)
		}
	}
	slices.SortFunc(seats, func(a, b gossip.Assignment) int {
		return cmp.Or(cmp.Compare(a.Seat, b.Seat), olderFirst(a, b))
	})
	out := make([]string, 0, len(seats))
	for _, a := range seats {
		out = append(out, a.Node)
	}
	return out
}

// Allocator is the node that makes decisions now: the first alive master in
// seat order; failing that, the first alive assigned node in join order;
// failing that (a new cluster), the first alive node in join order.
func Allocator(s gossip.Snapshot, alive map[string]bool) string {
	for _, m := range Masters(s) {
		if alive[m] {
			return m
		}
	}
	var fallback string
	for _, n := range Order(s.Nodes) {
		if !alive[n.Name] || n.Removed {
			continue
		}
		if a, ok := s.Assignments[n.Name]; ok && Active(a) {
			return n.Name
		}
		if fallback == "" {
			fallback = n.Name
		}
	}
	return fallback
}

// olderFirst orders two decisions by age: the earlier decision keeps a
// contested subnet or seat.
func olderFirst(a, b gossip.Assignment) int {
	return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.By, b.By), cmp.Compare(a.Node, b.Node))
}

// Plan returns the decisions the allocator should publish now: releases for
// removed nodes, fixes for subnets or seats held twice (after a partition
// heals), and assignments for nodes that have none. tick returns a fresh
// Lamport time for each decision.
func Plan(s gossip.Snapshot, c config.Cluster, alive map[string]bool, by string, tick func() uint64) []gossip.Assignment {
	var out []gossip.Assignment
	decide := func(a gossip.Assignment) {
		a.Version, a.By = tick(), by
		s.Assignments[a.Node] = a
		out = append(out, a)
	}
	// Releases: `knode reset` marked the node removed.
	for _, n := range Order(s.Nodes) {
		if a, ok := s.Assignments[n.Name]; ok && n.Removed && !a.Released {
			decide(gossip.Assignment{Node: n.Name, Seat: Worker, Released: true})
		}
	}
	// Duplicates: the older decision keeps the subnet or seat; the newer
	// holder goes back to the queue below.
	var redo []string
	holders := map[netip.Prefix]gossip.Assignment{}
	seats := map[int]gossip.Assignment{}
	for _, a := range sortedByAge(s.Assignments) {
		if !Active(a) {
			continue
		}
		lost := false
		if h, ok := holders[a.PodCIDR]; ok && h.Node != a.Node {
			lost = true
		}
		if h, ok := seats[a.Seat]; ok && a.Seat >= 0 && h.Node != a.Node {
			lost = true
		}
		if lost {
			redo = append(redo, a.Node)
			continue
		}
		holders[a.PodCIDR] = a
		if a.Seat >= 0 {
			seats[a.Seat] = a
		}
	}
	for _, name := range redo {
		delete(s.Assignments, name)
	}
	// New nodes (and losers of a duplicate), in join order.
	for _, n := range Order(s.Nodes) {
		a, ok := s.Assignments[n.Name]
		if n.Removed || !alive[n.Name] || (ok && Active(a)) {
			continue
		}
		next := gossip.Assignment{Node: n.Name, Seat: freeSeat(seats, c.Masters)}
		cidr, err := pickCIDR(c, holders, n.WantCIDR)
		if err != nil {
			if ok && a.Error == err.Error() {
				continue // already told
			}
			next.Seat, next.Error = Worker, err.Error()
			decide(next)
			continue
		}
		next.PodCIDR = cidr
		decide(next)
		holders[cidr] = next
		if next.Seat >= 0 {
			seats[next.Seat] = next
		}
	}
	return out
}

func sortedByAge(m map[string]gossip.Assignment) []gossip.Assignment {
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
	if want.IsValid() && want.Bits() == c.NodeCIDRMask && c.PodCIDR.Contains(want.Addr()) && want.Masked() == want {
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
