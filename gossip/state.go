package gossip

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"knode.dev/knode/pki"
)

// State is the local copy of the replicated records. Every record is checked
// before it is merged: the cluster identity against the token's CA pin and the
// CA's signature, each decision against the decision key and the cluster's
// plan, each node record against the key its decision binds. It is safe for
// concurrent use; Changed is signalled (coalesced) whenever a merge changes
// something.
type State struct {
	mu     sync.Mutex
	pin    [32]byte
	snap   Snapshot
	view   *Snapshot // a copy of snap shared by readers until snap changes
	digest uint64    // XOR of every held record's digestOf
	// pubDigest and pubCount are the digest and the record count as of the
	// last change, for readers that must not wait for the lock.
	pubDigest atomic.Uint64
	pubCount  atomic.Int64
	pending   map[string]NodeInfo
	// where maps each name with an active decision to the address it binds,
	// for memberlist's callbacks, which run under memberlist's own lock and
	// must not wait for this state's.
	where   sync.Map
	changed chan struct{}
	now     func() time.Time
}

// maxPending bounds node records held until their decision arrives.
const maxPending = 1024

// Errors a merge reports; a refused record changes nothing.
var (
	ErrNoCluster = errors.New("no cluster identity yet")
	ErrUnbound   = errors.New("no decision binds this node's key yet")
	ErrBadSig    = errors.New("bad signature")
)

// NewState returns an empty state that trusts the CA whose public key hash is
// pin (the join token's).
func NewState(pin [32]byte) *State {
	return &State{pin: pin, changed: make(chan struct{}, 1), pending: map[string]NodeInfo{}, now: time.Now,
		snap: Snapshot{Nodes: map[string]NodeInfo{}, Assignments: map[string]Assignment{}, Tokens: map[string]TokenRecord{}}}
}

// Changed is signalled after any change; one pending signal at most.
func (s *State) Changed() <-chan struct{} { return s.changed }

// notify marks the state changed: called with s.mu held after every change.
func (s *State) notify() {
	s.view = nil
	s.pubDigest.Store(s.digest)
	s.pubCount.Store(int64(len(s.snap.Nodes) + len(s.snap.Assignments) + len(s.snap.Tokens) + len(s.snap.Health) + len(s.snap.Images)))
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Snapshot returns a consistent copy of the whole state. The copy is shared
// by every caller until the state changes: its maps must not be modified.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view == nil {
		v := cloneSnapshot(s.snap)
		s.view = &v
	}
	return *s.view
}

// Digest summarises the held records: equal digests mean equal records
// (short of a collision).
//
// It takes no lock: memberlist's packet path reads it for every probe's
// answer and must never wait for a merge.
func (s *State) Digest() (uint64, int) {
	return s.pubDigest.Load(), int(s.pubCount.Load())
}

// Binding is the decision that binds name's keys, if any (released ones
// included: a removed node still signs its own record).
func (s *State) Binding(name string) (Assignment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.snap.Assignments[name]
	return a, ok
}

// BoundAddr is the address name's active decision binds, if any. It never
// waits for the state's lock.
func (s *State) BoundAddr(name string) (netip.AddrPort, bool) {
	v, ok := s.where.Load(name)
	if !ok {
		return netip.AddrPort{}, false
	}
	return v.(netip.AddrPort), true
}

// Cluster is the cluster identity, once known.
func (s *State) Cluster() *ClusterInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap.Cluster == nil {
		return nil
	}
	c := *s.snap.Cluster
	return &c
}

// Tick advances the Lamport clock and returns the new time, for a decision.
func (s *State) Tick() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Clock++
	s.view = nil
	return s.snap.Clock
}

// MergeCluster accepts the cluster identity when none is held yet and it is
// the one the pin names, signed by that CA. It reports whether it changed
// anything; a different identity from a peer is an error.
func (s *State) MergeCluster(c *ClusterInfo) (bool, error) {
	if c == nil {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if held := s.snap.Cluster; held != nil {
		if bytes.Equal(held.Sig, c.Sig) && bytes.Equal(held.SignedBytes(), c.SignedBytes()) {
			return false, nil
		}
		return false, errors.New("a different cluster identity")
	}
	if err := verifyCluster(c, s.pin); err != nil {
		return false, err
	}
	cp := *c
	cp.CACert, cp.Sig = bytes.Clone(c.CACert), bytes.Clone(c.Sig)
	s.snap.Cluster = &cp
	s.notify()
	return true, nil
}

// CAPin is the hash of the cluster CA's public key: what a join token pins.
func CAPin(c *ClusterInfo) ([32]byte, error) {
	cert, err := pki.ParseCert(c.CACert)
	if err != nil {
		return [32]byte{}, fmt.Errorf("cluster CA: %w", err)
	}
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo), nil
}

func verifyCluster(c *ClusterInfo, pin [32]byte) error {
	cert, err := pki.ParseCert(c.CACert)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	if sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo); sum != pin {
		return fmt.Errorf("the cluster's CA (%s) does not match the token's pin sha256:%x: wrong cluster, or someone in between", pki.PinHash(cert), pin)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("cluster CA key is not ECDSA")
	}
	sum := sha256.Sum256(c.SignedBytes())
	if !ecdsa.VerifyASN1(pub, sum[:], c.Sig) {
		return fmt.Errorf("cluster identity: %w", ErrBadSig)
	}
	if err := c.Cluster.Validate(); err != nil {
		return fmt.Errorf("cluster plan: %w", err)
	}
	return nil
}

// MergeAssignment keeps the newest valid decision for the node.
func (s *State) MergeAssignment(a Assignment) (bool, error) {
	// The signature is checked without the lock: memberlist's packet path
	// reads this state (every probe's answer carries its digest), and a
	// state held for thousands of signature checks delays those answers
	// into failed probes and false suspicion.
	key, news, err := s.assignmentNews(a)
	if err != nil || !news {
		return false, err
	}
	if !ed25519.Verify(key[:], a.SignedBytes(), a.Sig[:]) {
		return false, fmt.Errorf("decision for %s: %w", a.Node, ErrBadSig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ci := s.snap.Cluster; ci == nil || ci.DecisionKey != key {
		return false, fmt.Errorf("decision for %s: the cluster's decision key changed while it was checked", a.Node)
	}
	old, ok := s.snap.Assignments[a.Node]
	if ok && !a.Newer(old) {
		return false, nil // a newer one was merged meanwhile
	}
	if a.Version > s.snap.Clock {
		s.snap.Clock = a.Version // notify below drops the shared view
	}
	if ok {
		s.digest ^= digestOf(old.Sig)
		if old.SignKey != a.SignKey {
			// The name was given to another key: what the old key said
			// about itself no longer counts.
			if n, held := s.snap.Nodes[a.Node]; held {
				s.digest ^= digestOf(n.Sig)
				delete(s.snap.Nodes, a.Node)
			}
			s.dropHealthLocked(a.Node)
			s.dropImagesLocked(a.Node)
		}
	}
	s.digest ^= digestOf(a.Sig)
	s.snap.Assignments[a.Node] = a
	if a.Active() {
		s.where.Store(a.Node, netip.AddrPortFrom(a.Addr, a.Port))
	} else {
		s.where.Delete(a.Node)
	}
	if n, ok := s.pending[a.Node]; ok {
		delete(s.pending, a.Node)
		s.mergeNodeLocked(n)
	}
	s.notify()
	return true, nil
}

// assignmentNews checks a decision against the cluster's plan and this
// node's clock, and tells whether it is newer than the one held; key is the
// decision key to check its signature with.
func (s *State) assignmentNews(a Assignment) (key Key, news bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ci := s.snap.Cluster
	if ci == nil {
		return key, false, ErrNoCluster
	}
	if err := a.validate(ci.Cluster); err != nil {
		return key, false, err
	}
	if a.Version > s.snap.Clock+clockLead {
		return key, false, fmt.Errorf("version %d is far ahead of this node's clock %d", a.Version, s.snap.Clock)
	}
	if old, ok := s.snap.Assignments[a.Node]; ok && !a.Newer(old) {
		return key, false, nil
	}
	return ci.DecisionKey, true, nil
}

// MergeNode keeps the node's record with the highest generation, if it is
// signed with the key its decision binds.
func (s *State) MergeNode(n NodeInfo) (bool, error) {
	if err := n.validate(s.now().UnixNano()); err != nil {
		return false, err
	}
	// As for decisions, the signature is checked without the lock.
	s.mu.Lock()
	old, ok := s.snap.Nodes[n.Name]
	a, bound := s.snap.Assignments[n.Name]
	if (ok && old.Gen >= n.Gen) || !bound {
		defer s.mu.Unlock()
		return s.mergeNodeLocked(n) // stale, or kept until its decision arrives
	}
	s.mu.Unlock()
	if !ed25519.Verify(a.SignKey[:], n.SignedBytes(), n.Sig[:]) {
		return false, fmt.Errorf("record of %s: %w", n.Name, ErrBadSig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now, ok := s.snap.Assignments[n.Name]; !ok || now.SignKey != a.SignKey {
		return s.mergeNodeLocked(n) // the name's key changed meanwhile: check again
	}
	return s.mergeVerifiedNodeLocked(n)
}

func (s *State) mergeNodeLocked(n NodeInfo) (bool, error) {
	old, ok := s.snap.Nodes[n.Name]
	if ok && old.Gen >= n.Gen {
		return false, nil
	}
	a, bound := s.snap.Assignments[n.Name]
	if !bound {
		// Its decision may still be on its way: keep the newest (bounded)
		// and check it when the decision arrives.
		if p, ok := s.pending[n.Name]; (ok && p.Gen < n.Gen) || (!ok && len(s.pending) < maxPending) {
			s.pending[n.Name] = n
		}
		return false, ErrUnbound
	}
	if !ed25519.Verify(a.SignKey[:], n.SignedBytes(), n.Sig[:]) {
		return false, fmt.Errorf("record of %s: %w", n.Name, ErrBadSig)
	}
	return s.mergeVerifiedNodeLocked(n)
}

// mergeVerifiedNodeLocked keeps n, whose signature is checked, unless a
// record as new is held.
func (s *State) mergeVerifiedNodeLocked(n NodeInfo) (bool, error) {
	old, ok := s.snap.Nodes[n.Name]
	if ok && old.Gen >= n.Gen {
		return false, nil
	}
	if ok {
		s.digest ^= digestOf(old.Sig)
	}
	s.digest ^= digestOf(n.Sig)
	s.snap.Nodes[n.Name] = n
	s.notify()
	return true, nil
}

func cloneSnapshot(in Snapshot) Snapshot {
	out := Snapshot{Clock: in.Clock, Nodes: maps.Clone(in.Nodes), Assignments: maps.Clone(in.Assignments), Tokens: maps.Clone(in.Tokens), Health: maps.Clone(in.Health), Images: maps.Clone(in.Images)}
	if out.Nodes == nil {
		out.Nodes = map[string]NodeInfo{}
	}
	if out.Assignments == nil {
		out.Assignments = map[string]Assignment{}
	}
	if out.Tokens == nil {
		out.Tokens = map[string]TokenRecord{}
	}
	if in.Cluster != nil {
		c := *in.Cluster
		out.Cluster = &c
	}
	return out
}
