package gossip

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"unicode"

	"knode.dev/knode/config"
)

// Limits on what a peer may send. Anything larger is refused before it is
// decoded further.
const (
	maxName       = 63
	maxText       = 256     // error strings, versions
	maxCert       = 8 << 10 // the CA certificate (PEM)
	maxBody       = 1 << 20 // a letter's body
	maxRecordSize = 2048    // one broadcast record
	maxRecords    = 1 << 16 // records in one state transfer
	maxState      = 16 << 20
	// clockLead bounds how far ahead of the local Lamport clock a decision's
	// version may be: an allocator ticks once per decision, so a larger jump
	// is a forgery or a bug, and accepting it could wrap the clock.
	clockLead = 1 << 32
	// genLead bounds how far a node record's generation (wall-clock
	// nanoseconds) may be ahead of the local clock: one hour of skew.
	genLead = uint64(3600e9)
	// claimWindow bounds the age of a join or update request (replays).
	claimWindow = int64(600e9)
)

// Signature domains: every signed byte string starts with its own, so a
// signature over one kind of record can never pass for another.
const (
	domainCluster = "knode cluster v2\x00"
	domainDecide  = "knode decision v2\x00"
	domainNode    = "knode node v2\x00"
	domainClaim   = "knode claim v2\x00"
	domainLetter  = "knode letter v2\x00"
	domainToken   = "knode token v2\x00"
	domainSeat    = "knode seat proof v2\x00"
)

// Key is an Ed25519 public key (node signing keys, the decision key) or an
// X25519 public key (the key secrets are sealed to).
type Key [32]byte

// Sig is an Ed25519 signature.
type Sig [64]byte

// ClusterInfo is the cluster's identity, written once by `knode init` and
// signed with the CA key: the token pins the CA, the CA vouches for the
// ranges and for the decision key.
type ClusterInfo struct {
	Cluster config.Cluster `json:"cluster"`
	CACert  []byte         `json:"caCert"` // PEM; public
	Created int64          `json:"created"`
	// DecisionKey verifies every decision (seats, subnets, releases); its
	// private half is held by masters only.
	DecisionKey Key    `json:"decisionKey"`
	Sig         []byte `json:"sig"` // ECDSA (ASN.1) by the CA key over SignedBytes
}

// NodeInfo is what a node says about itself, signed with its own key (bound
// to its name by its decision). Only non-default facts are published: a
// master announces that it holds the master keys, a node being reset that it
// is gone.
type NodeInfo struct {
	Name       string `json:"name"`
	HasSecrets bool   `json:"hasSecrets,omitempty"`
	// Removed is set by `knode reset` before leaving: the allocator may then
	// release this node's subnet and seat.
	Removed bool `json:"removed,omitempty"`
	// EtcdRestore is set by a master that restored etcd from a snapshot
	// (`knode etcd restore`): the wall-clock nanoseconds of that restore. The
	// other masters' agents then rejoin the restored cluster through it; a
	// worker's value is ignored (only a seated master's counts).
	EtcdRestore uint64 `json:"etcdRestore,omitempty"`
	Gen         uint64 `json:"gen"` // wall-clock nanoseconds, increasing
	Sig         Sig    `json:"sig"`
}

// Claim is a node's request to be admitted (or to have its address
// updated): its name, its keys, where it is. It is signed by the key it
// claims, proving the sender holds it, and sent to the masters; an allocator
// answers with a decision.
type Claim struct {
	Name     string       `json:"name"`
	SignKey  Key          `json:"signKey"`
	BoxKey   Key          `json:"boxKey"`
	Addr     netip.Addr   `json:"addr"`
	Port     uint16       `json:"port"`
	WantCIDR netip.Prefix `json:"wantCIDR,omitzero"` // the subnet held before, if any
	Time     int64        `json:"time"`              // unix nanoseconds when made
	// TokenID and Proof show that the claimant holds a master token
	// (SeatProof); zero for a worker.
	TokenID [8]byte  `json:"tokenID,omitzero"`
	Proof   [32]byte `json:"proof,omitzero"`
	Sig     Sig      `json:"sig"`
}

// Assignment is the allocator's decision for one node, signed with the
// decision key: the node's name bound to its keys and address, its pod subnet
// and master seat. Decisions are sticky: the allocator never changes one while
// its node is known, except to resolve a duplicate created on both sides of a
// partition, to follow an address change, or to release a removed node.
type Assignment struct {
	Node    string       `json:"node"`
	SignKey Key          `json:"signKey"`
	BoxKey  Key          `json:"boxKey"`
	Addr    netip.Addr   `json:"addr"`
	Port    uint16       `json:"port"`
	PodCIDR netip.Prefix `json:"podCIDR,omitzero"`
	Seat    int          `json:"seat"` // master seat 0..masters-1, or -1 for a worker
	// Error is set when no decision is possible (pod range exhausted).
	Error    string `json:"error,omitempty"`
	Released bool   `json:"released,omitempty"`
	// MaySeat: the node was admitted with a master token, so it may hold a
	// master seat (now, or when one is released and it is promoted).
	MaySeat bool `json:"maySeat,omitempty"`
	// Token is the join token that admitted the node (zero for the node
	// that created the cluster): a token with a use limit admits only so
	// many names (TokenRecord.Uses).
	Token   [8]byte `json:"token,omitzero"`
	Version uint64  `json:"version"` // Lamport time of the decision
	By      string  `json:"by"`      // the allocator that made it
	Sig     Sig     `json:"sig"`
}

// Newer reports whether a should replace b: higher version, then author name,
// then signature bytes (two masters deciding at the same Lamport time).
func (a Assignment) Newer(b Assignment) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	if a.By != b.By {
		return a.By > b.By
	}
	return string(a.Sig[:]) > string(b.Sig[:])
}

// Active reports whether the decision gives its node a subnet.
func (a Assignment) Active() bool { return !a.Released && a.Error == "" }

// Snapshot is a consistent copy of the replicated state.
type Snapshot struct {
	Cluster     *ClusterInfo           `json:"cluster,omitempty"`
	Nodes       map[string]NodeInfo    `json:"nodes"`
	Assignments map[string]Assignment  `json:"assignments"`
	Health      map[string]Health      `json:"health,omitempty"`
	Images      map[string]Images      `json:"images,omitempty"`
	Tokens      map[string]TokenRecord `json:"-"` // by ID in hex
	Clock       uint64                 `json:"clock"`
}

// ValidName reports whether s may name a node: a Kubernetes node name of at
// most 63 characters that cannot be read as a command-line option.
func ValidName(s string) bool { return len(s) <= maxName && config.ValidNodeName(s) }

func validText(s string) bool {
	if len(s) > maxText {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validAddr(a netip.Addr, port uint16) error {
	// Pod networking (routes, VXLAN peers) is IPv4 here.
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("bad address %s: want a unicast IPv4 address", a)
	}
	if port == 0 {
		return errors.New("port 0")
	}
	return nil
}

// validate checks a decision's values against the cluster's plan.
func (a Assignment) validate(c config.Cluster) error {
	switch {
	case !ValidName(a.Node):
		return fmt.Errorf("bad node name %q", a.Node)
	case !ValidName(a.By):
		return fmt.Errorf("bad allocator name %q", a.By)
	case !validText(a.Error):
		return errors.New("bad error text")
	case a.Seat < -1 || a.Seat >= c.Masters:
		return fmt.Errorf("seat %d outside 0..%d", a.Seat, c.Masters-1)
	}
	if a.Released || a.Error != "" {
		if a.Seat != -1 || a.PodCIDR.IsValid() {
			return errors.New("a released or failed decision holds a seat or subnet")
		}
		return nil
	}
	if err := validAddr(a.Addr, a.Port); err != nil {
		return err
	}
	if !InRange(c, a.PodCIDR) {
		return fmt.Errorf("subnet %s is not a /%d of the pod range %s", a.PodCIDR, c.NodeCIDRMask, c.PodCIDR)
	}
	return nil
}

// InRange reports whether p is one node subnet of the cluster's pod range.
func InRange(c config.Cluster, p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == c.NodeCIDRMask && p.Masked() == p && c.PodCIDR.Contains(p.Addr())
}

func (n NodeInfo) validate(nowNanos int64) error {
	if !ValidName(n.Name) {
		return fmt.Errorf("bad node name %q", n.Name)
	}
	if n.Gen > uint64(nowNanos)+genLead {
		return fmt.Errorf("generation %d is ahead of this node's clock", n.Gen)
	}
	if n.EtcdRestore > uint64(nowNanos)+genLead {
		return fmt.Errorf("etcd restore time %d is ahead of this node's clock", n.EtcdRestore)
	}
	return nil
}

func (c Claim) validate(nowNanos int64) error {
	if !ValidName(c.Name) {
		return fmt.Errorf("bad node name %q", c.Name)
	}
	if err := validAddr(c.Addr, c.Port); err != nil {
		return err
	}
	if d := nowNanos - c.Time; d > claimWindow || d < -claimWindow {
		return errors.New("claim made more than 10 minutes from now (replayed, or clocks apart)")
	}
	if !ed25519.Verify(c.SignKey[:], c.SignedBytes(), c.Sig[:]) {
		return errors.New("claim not signed by the key it claims")
	}
	return nil
}
