package gossip

import (
	"bytes"
	"maps"
	"sync"
)

// State is the local copy of the replicated records. It is safe for concurrent
// use; Changed is signalled (coalesced) whenever a merge changes something.
type State struct {
	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{}
}

// NewState returns a state seeded from a saved snapshot (may be zero).
func NewState(seed Snapshot) *State {
	s := &State{changed: make(chan struct{}, 1)}
	s.snap = cloneSnapshot(seed)
	return s
}

// Changed is signalled after any change; one pending signal at most.
func (s *State) Changed() <-chan struct{} { return s.changed }

func (s *State) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Snapshot returns a copy of the whole state.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneSnapshot(s.snap)
}

// Tick advances the Lamport clock and returns the new time, for a decision.
func (s *State) Tick() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Clock++
	return s.snap.Clock
}

func (s *State) witness(v uint64) {
	if v > s.snap.Clock {
		s.snap.Clock = v
	}
}

// MergeCluster accepts the cluster identity when none is held yet. A
// different identity from a peer is ignored (and reported false).
func (s *State) MergeCluster(c *ClusterInfo) bool {
	if c == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap.Cluster != nil {
		return false
	}
	cp := *c
	cp.CACert = bytes.Clone(c.CACert)
	s.snap.Cluster = &cp
	s.notify()
	return true
}

// MergeNode keeps the node's record with the highest generation.
func (s *State) MergeNode(n NodeInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.snap.Nodes[n.Name]
	if ok && old.Gen >= n.Gen {
		return false
	}
	s.snap.Nodes[n.Name] = n
	s.notify()
	return true
}

// MergeAssignment keeps the newest decision for the node.
func (s *State) MergeAssignment(a Assignment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.witness(a.Version)
	old, ok := s.snap.Assignments[a.Node]
	if ok && !a.Newer(old) {
		return false
	}
	s.snap.Assignments[a.Node] = a
	s.notify()
	return true
}

// Merge folds a whole remote snapshot in and reports whether anything changed.
func (s *State) Merge(r Snapshot) bool {
	changed := s.MergeCluster(r.Cluster)
	for _, n := range r.Nodes {
		changed = s.MergeNode(n) || changed
	}
	for _, a := range r.Assignments {
		changed = s.MergeAssignment(a) || changed
	}
	s.mu.Lock()
	s.witness(r.Clock)
	s.mu.Unlock()
	return changed
}

func cloneSnapshot(in Snapshot) Snapshot {
	out := Snapshot{Clock: in.Clock, Nodes: maps.Clone(in.Nodes), Assignments: maps.Clone(in.Assignments)}
	if out.Nodes == nil {
		out.Nodes = map[string]NodeInfo{}
	}
	if out.Assignments == nil {
		out.Assignments = map[string]Assignment{}
	}
	if in.Cluster != nil {
		c := *in.Cluster
		out.Cluster = &c
	}
	return out
}
