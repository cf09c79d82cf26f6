package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"knode.dev/knode/config"
)

// Message types: the first byte of every gossip message.
const (
	msgNode   byte = 1 // NodeInfo, broadcast
	msgAssign byte = 2 // Assignment, broadcast
	msgLetter byte = 3 // Letter, sent to one node
	msgDigest byte = 4 // a sender's digest, added to its gossip while it has news to send
	msgToken  byte = 5 // TokenRecord, broadcast
)

// Push/pull payload types.
const (
	stateFull   byte = 1 // the whole state: for a joining node
	stateDigest byte = 2 // a digest: a mismatch starts a delta sync
)

func (c *ClusterInfo) body(e *enc) {
	cl := c.Cluster
	e.string(cl.Name)
	e.prefix(cl.PodCIDR)
	e.prefix(cl.ServiceCIDR)
	e.uvarint(uint64(cl.NodeCIDRMask))
	e.uvarint(uint64(cl.Masters))
	e.string(cl.Network)
	e.bool(cl.TaintMasters)
	e.bytes(c.CACert)
	e.varint(c.Created)
	e.fixed(c.DecisionKey[:])
}

// SignedBytes is what the CA signs.
func (c *ClusterInfo) SignedBytes() []byte {
	e := enc{b: []byte(domainCluster)}
	c.body(&e)
	return e.b
}

func (c *ClusterInfo) encode() []byte {
	var e enc
	c.body(&e)
	e.bytes(c.Sig)
	return e.b
}

func decodeCluster(b []byte) (*ClusterInfo, error) {
	d := dec{b: b}
	var c ClusterInfo
	c.Cluster = config.Cluster{Name: d.string(maxName), PodCIDR: d.prefix(), ServiceCIDR: d.prefix()}
	c.Cluster.NodeCIDRMask = int(min(d.uvarint(), 128))
	c.Cluster.Masters = int(min(d.uvarint(), 128))
	c.Cluster.Network = d.string(maxName)
	c.Cluster.TaintMasters = d.bool()
	c.CACert = d.bytes(maxCert)
	c.Created = d.varint()
	d.fixed(c.DecisionKey[:])
	c.Sig = d.bytes(256)
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("cluster identity: %w", err)
	}
	return &c, nil
}

func (n *NodeInfo) body(e *enc) {
	e.string(n.Name)
	e.flags(n.HasSecrets, n.Removed)
	e.uvarint(n.Gen)
	e.uvarint(n.EtcdRestore)
}

// SignedBytes is what the node signs.
func (n *NodeInfo) SignedBytes() []byte {
	e := enc{b: []byte(domainNode)}
	n.body(&e)
	return e.b
}

// Sign signs the record with the node's key.
func (n *NodeInfo) Sign(key ed25519.PrivateKey) { copy(n.Sig[:], ed25519.Sign(key, n.SignedBytes())) }

// EncodeNode is the broadcast message for a node record.
func EncodeNode(n NodeInfo) []byte {
	e := enc{b: []byte{msgNode}}
	n.body(&e)
	e.fixed(n.Sig[:])
	return e.b
}

func decodeNode(b []byte) (NodeInfo, error) {
	d := dec{b: b}
	n := NodeInfo{Name: d.string(maxName)}
	f := d.flags(2)
	n.HasSecrets, n.Removed = f[0], f[1]
	n.Gen = d.uvarint()
	n.EtcdRestore = d.uvarint()
	d.fixed(n.Sig[:])
	return n, d.end()
}

func (a *Assignment) body(e *enc) {
	e.string(a.Node)
	e.fixed(a.SignKey[:])
	e.fixed(a.BoxKey[:])
	e.addr(a.Addr)
	e.uvarint(uint64(a.Port))
	e.prefix(a.PodCIDR)
	e.varint(int64(a.Seat))
	e.string(a.Error)
	e.flags(a.Released, a.MaySeat)
	e.fixed(a.Token[:])
	e.uvarint(a.Version)
	e.string(a.By)
}

// SignedBytes is what the decision key signs.
func (a *Assignment) SignedBytes() []byte {
	e := enc{b: []byte(domainDecide)}
	a.body(&e)
	return e.b
}

// Sign signs the decision with the decision key.
func (a *Assignment) Sign(key ed25519.PrivateKey) { copy(a.Sig[:], ed25519.Sign(key, a.SignedBytes())) }

// EncodeAssignment is the broadcast message for a decision.
func EncodeAssignment(a Assignment) []byte {
	e := enc{b: []byte{msgAssign}}
	a.body(&e)
	e.fixed(a.Sig[:])
	return e.b
}

func decodeAssignment(b []byte) (Assignment, error) {
	d := dec{b: b}
	a := Assignment{Node: d.string(maxName)}
	d.fixed(a.SignKey[:])
	d.fixed(a.BoxKey[:])
	a.Addr, a.Port = d.addr(), d.port()
	a.PodCIDR = d.prefix()
	seat := d.varint()
	if seat < -1 || seat > 127 {
		d.fail(fmt.Errorf("seat %d", seat))
	}
	a.Seat = int(seat)
	a.Error = d.string(maxText)
	f := d.flags(2)
	a.Released, a.MaySeat = f[0], f[1]
	d.fixed(a.Token[:])
	a.Version = d.uvarint()
	a.By = d.string(maxName)
	d.fixed(a.Sig[:])
	return a, d.end()
}

func (c *Claim) body(e *enc) {
	e.string(c.Name)
	e.fixed(c.SignKey[:])
	e.fixed(c.BoxKey[:])
	e.addr(c.Addr)
	e.uvarint(uint64(c.Port))
	e.prefix(c.WantCIDR)
	e.varint(c.Time)
	e.fixed(c.TokenID[:])
	e.fixed(c.Proof[:])
}

// SignedBytes is what the claiming node signs.
func (c *Claim) SignedBytes() []byte {
	e := enc{b: []byte(domainClaim)}
	c.body(&e)
	return e.b
}

// Sign signs the claim with the key it claims.
func (c *Claim) Sign(key ed25519.PrivateKey) { copy(c.Sig[:], ed25519.Sign(key, c.SignedBytes())) }

// EncodeClaim is a claim as a letter body.
func EncodeClaim(c Claim) []byte {
	var e enc
	c.body(&e)
	e.fixed(c.Sig[:])
	return e.b
}

// DecodeClaim reads a claim from a letter body (validation is separate).
func DecodeClaim(b []byte) (Claim, error) {
	d := dec{b: b}
	c := Claim{Name: d.string(maxName)}
	d.fixed(c.SignKey[:])
	d.fixed(c.BoxKey[:])
	c.Addr, c.Port = d.addr(), d.port()
	c.WantCIDR = d.prefix()
	c.Time = d.varint()
	d.fixed(c.TokenID[:])
	d.fixed(c.Proof[:])
	d.fixed(c.Sig[:])
	return c, d.end()
}

// ValidateClaim checks a claim's values and its proof of key possession.
func ValidateClaim(c Claim, nowNanos int64) error { return c.validate(nowNanos) }

// digestOf is a record's contribution to the state digest: its signature's
// first eight bytes (signatures are unique per signed content).
func digestOf(s Sig) uint64 { return binary.LittleEndian.Uint64(s[:8]) }
