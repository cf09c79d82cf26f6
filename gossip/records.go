// Package gossip wraps hashicorp/memberlist: it carries knode's replicated
// records between nodes (encrypted with a key derived from the join token),
// keeps the local copy of the cluster state, and reports membership changes.
//
// It knows nothing of what the records mean: deciding masters and pod CIDRs is
// the roles package's job. Every record has one author and a version, and merging
// keeps the highest version, so all nodes converge to the same state whatever
// the order of delivery (push/pull exchanges repair anything lost).
package gossip

import (
	"net/netip"

	"knode.dev/knode/config"
)

// ClusterInfo is the cluster's identity, written once by `knode init`.
type ClusterInfo struct {
	Cluster config.Cluster `json:"cluster"`
	CACert  []byte         `json:"caCert"` // PEM; public
	Created int64          `json:"created"`
}

// NodeInfo is what a node says about itself; only that node writes it.
type NodeInfo struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"` // the address peers and pods route to
	Port    uint16     `json:"port"`    // gossip port
	Version string     `json:"version"` // knode version
	// JoinedAt orders nodes for master seats (ties broken by name).
	JoinedAt int64  `json:"joinedAt"`
	PubKey   []byte `json:"pubKey"` // X25519 key secrets are sealed to
	// WantCIDR is the subnet this node held before (from its data dir): the
	// allocator gives it back when it is free.
	WantCIDR   netip.Prefix `json:"wantCIDR,omitzero"`
	HasSecrets bool         `json:"hasSecrets,omitempty"`
	// Removed is set by `knode reset` before leaving: the allocator may then
	// release this node's subnet and seat.
	Removed bool   `json:"removed,omitempty"`
	Gen     uint64 `json:"gen"` // incremented by the author on every change
}

// Assignment is the allocator's decision for one node. Decisions are sticky:
// the allocator never changes one while its node is known, except to resolve a
// duplicate created on both sides of a partition.
type Assignment struct {
	Node    string       `json:"node"`
	PodCIDR netip.Prefix `json:"podCIDR,omitzero"`
	Seat    int          `json:"seat"` // master seat 0..masters-1, or -1 for a worker
	// Error is set when no decision is possible (pod range exhausted).
	Error    string `json:"error,omitempty"`
	Released bool   `json:"released,omitempty"`
	Version  uint64 `json:"version"` // Lamport time of the decision
	By       string `json:"by"`      // the allocator that made it
}

// Newer reports whether a should replace b: higher version, then author name.
func (a Assignment) Newer(b Assignment) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	return a.By > b.By
}

// Snapshot is a consistent copy of the replicated state.
type Snapshot struct {
	Cluster     *ClusterInfo          `json:"cluster,omitempty"`
	Nodes       map[string]NodeInfo   `json:"nodes"`
	Assignments map[string]Assignment `json:"assignments"`
	Clock       uint64                `json:"clock"`
}
