package gossip

import (
	"fmt"
	"maps"
	"slices"
)

// Anti-entropy: a state is summarised by a digest (carried by every probe's
// ack and by memberlist's periodic push/pull); on a mismatch the two nodes
// exchange version vectors and send each other only the records the other
// lacks. Records learnt this way are merged, never re-broadcast.

// Rejection is one refused record: who it claimed to be from, and why.
type Rejection struct {
	Author string
	Err    error
}

// records lists every held record as its broadcast message, decisions first
// (a node record is checked against its decision).
func (s *State) records(want func(t byte, name string, version uint64) bool) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, name := range slices.Sorted(maps.Keys(s.snap.Assignments)) {
		if a := s.snap.Assignments[name]; want(msgAssign, name, a.Version) {
			out = append(out, EncodeAssignment(a))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.snap.Nodes)) {
		if n := s.snap.Nodes[name]; want(msgNode, name, n.Gen) {
			out = append(out, EncodeNode(n))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.snap.Health)) {
		if h := s.snap.Health[name]; want(msgHealth, name, h.Gen) {
			out = append(out, EncodeHealth(h))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.snap.Images)) {
		if m := s.snap.Images[name]; want(msgImages, name, m.Gen) {
			out = append(out, EncodeImages(m))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.snap.Tokens)) {
		if t := s.snap.Tokens[name]; want(msgToken, name, t.Gen) {
			out = append(out, EncodeToken(t))
		}
	}
	return out
}

// EncodeFull is the whole state: the cluster identity, the clock and every
// record. It is what a joining node receives and what a node saves.
func (s *State) EncodeFull() []byte {
	recs := s.records(func(byte, string, uint64) bool { return true })
	s.mu.Lock()
	e := enc{b: []byte{stateFull}}
	if s.snap.Cluster != nil {
		e.bytes(s.snap.Cluster.encode())
	} else {
		e.bytes(nil)
	}
	e.uvarint(s.snap.Clock)
	s.mu.Unlock()
	e.uvarint(uint64(len(recs)))
	for _, r := range recs {
		e.bytes(r)
	}
	return e.b
}

// MergeFull merges a whole state (from EncodeFull) record by record; what it
// refuses is returned, the rest is kept.
func (s *State) MergeFull(b []byte) (bool, []Rejection, error) {
	if len(b) > maxState {
		return false, nil, fmt.Errorf("state of %d bytes exceeds %d", len(b), maxState)
	}
	d := dec{b: b}
	if t := d.byte(); t != stateFull {
		return false, nil, fmt.Errorf("not a full state (type %d)", t)
	}
	changed := false
	var rej []Rejection
	if raw := d.bytes(maxCert + 1024); len(raw) > 0 {
		c, err := decodeCluster(raw)
		if err == nil {
			var ch bool
			ch, err = s.MergeCluster(c)
			changed = changed || ch
		}
		if err != nil {
			rej = append(rej, Rejection{Author: "cluster", Err: err})
		}
	}
	clock := d.uvarint()
	n := d.uvarint()
	if n > maxRecords {
		return changed, rej, fmt.Errorf("%d records exceed %d", n, maxRecords)
	}
	var recs [][]byte
	for range n {
		recs = append(recs, d.bytes(maxBody))
	}
	if err := d.end(); err != nil {
		return changed, rej, fmt.Errorf("state: %w", err)
	}
	ch, r := s.MergeRecords(recs)
	s.witness(clock)
	return changed || ch, append(rej, r...), nil
}

// witness advances the clock to a peer's (bounded like a decision's
// version, so a forged clock cannot wrap ours).
func (s *State) witness(clock uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clock > s.snap.Clock && clock <= s.snap.Clock+clockLead {
		s.snap.Clock = clock
		s.view = nil
	}
}

// MergeRecords merges broadcast-form records (decisions and node records).
func (s *State) MergeRecords(recs [][]byte) (bool, []Rejection) {
	changed := false
	var rej []Rejection
	for _, r := range recs {
		ch, _, author, err := s.MergeMessage(r)
		if err != nil && err != ErrUnbound && err != ErrStale {
			rej = append(rej, Rejection{Author: author, Err: err})
		}
		changed = changed || ch
	}
	return changed, rej
}

// MergeMessage decodes and merges one record message. key names the record
// (for the broadcast queue); author is who it claims to come from (for
// counting refusals).
func (s *State) MergeMessage(m []byte) (changed bool, key, author string, err error) {
	if len(m) == 0 {
		return false, "", "", errTruncated
	}
	switch m[0] {
	case msgAssign:
		a, err := decodeAssignment(m[1:])
		if err != nil {
			return false, "", safeName(a.By), fmt.Errorf("decision: %w", err)
		}
		ch, err := s.MergeAssignment(a)
		return ch, "a/" + a.Node, safeName(a.By), err
	case msgNode:
		n, err := decodeNode(m[1:])
		if err != nil {
			return false, "", safeName(n.Name), fmt.Errorf("node record: %w", err)
		}
		ch, err := s.MergeNode(n)
		return ch, "n/" + n.Name, safeName(n.Name), err
	case msgHealth:
		h, err := decodeHealth(m[1:])
		if err != nil {
			return false, "", safeName(h.Name), fmt.Errorf("health: %w", err)
		}
		ch, err := s.MergeHealth(h)
		return ch, "h/" + h.Name, safeName(h.Name), err
	case msgImages:
		im, err := decodeImages(m[1:])
		if err != nil {
			return false, "", safeName(im.Name), fmt.Errorf("images: %w", err)
		}
		ch, err := s.MergeImages(im)
		return ch, "i/" + im.Name, safeName(im.Name), err
	case msgToken:
		t, err := decodeToken(m[1:])
		if err != nil {
			return false, "", safeName(t.By), fmt.Errorf("token record: %w", err)
		}
		ch, err := s.MergeToken(t)
		return ch, "t/" + t.Name(), safeName(t.By), err
	}
	return false, "", "", fmt.Errorf("unknown record type %d", m[0])
}

// safeName is a name fit for a log line and a counter key.
func safeName(s string) string {
	if ValidName(s) {
		return s
	}
	return "(invalid name)"
}

// Vector is this node's version vector: every record's kind, name and
// version, for a delta sync. A decision's entry also carries a tag (the head
// of its signature): two allocators that cannot hear each other (the two
// sides of a partition, a master restarting while another still decides)
// can make different decisions for one node at the same Lamport version, and
// versions alone would call the two nodes holding them even, for good.
func (s *State) Vector() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e enc
	e.uvarint(uint64(len(s.snap.Assignments) + len(s.snap.Nodes) + len(s.snap.Tokens) + len(s.snap.Health) + len(s.snap.Images)))
	for name, a := range s.snap.Assignments {
		e.byte(msgAssign)
		e.string(name)
		e.uvarint(a.Version)
		e.fixed(a.Sig[:len(tag{})])
	}
	for name, n := range s.snap.Nodes {
		e.byte(msgNode)
		e.string(name)
		e.uvarint(n.Gen)
	}
	for name, h := range s.snap.Health {
		e.byte(msgHealth)
		e.string(name)
		e.uvarint(h.Gen)
	}
	for name, m := range s.snap.Images {
		e.byte(msgImages)
		e.string(name)
		e.uvarint(m.Gen)
	}
	for name, t := range s.snap.Tokens {
		e.byte(msgToken)
		e.string(name)
		e.uvarint(t.Gen)
	}
	return e.b
}

type vkey struct {
	t    byte
	name string
}

// tag is the head of a decision's signature, in a version vector.
type tag [8]byte

func tagOf(a Assignment) (t tag) {
	copy(t[:], a.Sig[:])
	return t
}

// decodeVector returns every entry's version, and the decisions' tags.
func decodeVector(b []byte) (map[vkey]uint64, map[string]tag, error) {
	d := dec{b: b}
	n := d.uvarint()
	if n > maxRecords {
		return nil, nil, fmt.Errorf("vector of %d entries", n)
	}
	out, tags := make(map[vkey]uint64, n), map[string]tag{}
	for range n {
		k := vkey{t: d.byte(), name: d.string(maxName)}
		out[k] = d.uvarint()
		if k.t == msgAssign {
			var t tag
			d.fixed(t[:])
			tags[k.name] = t
		}
	}
	return out, tags, d.end()
}

// tags lists the tag of every decision held.
func (s *State) tags() map[string]tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]tag, len(s.snap.Assignments))
	for name, a := range s.snap.Assignments {
		out[name] = tagOf(a)
	}
	return out
}

// Delta returns the records a peer with vector lacks or holds older, and
// whether the peer holds something newer than this node (so that this node
// should ask it in turn).
func (s *State) Delta(vector []byte) ([][]byte, bool, error) {
	theirs, theirTags, err := decodeVector(vector)
	if err != nil {
		return nil, false, err
	}
	// Another decision at the same version is sent too: the receiver keeps
	// the newer of the two (Assignment.Newer).
	myTags := s.tags()
	otherDecision := func(t byte, name string) bool { return t == msgAssign && theirTags[name] != myTags[name] }
	mine := 0
	recs := s.records(func(t byte, name string, v uint64) bool {
		have, ok := theirs[vkey{t, name}]
		if ok {
			mine++
		}
		return !ok || have < v || (have == v && otherDecision(t, name))
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	newer := mine < len(theirs)
	for k, v := range theirs {
		if newer {
			break
		}
		switch k.t {
		case msgAssign:
			newer = v > s.snap.Assignments[k.name].Version
		case msgNode:
			newer = v > s.snap.Nodes[k.name].Gen
		case msgHealth:
			newer = v > s.snap.Health[k.name].Gen
		case msgImages:
			newer = v > s.snap.Images[k.name].Gen
		case msgToken:
			newer = v > s.snap.Tokens[k.name].Gen
		}
	}
	for name, t := range theirTags {
		if a, ok := s.snap.Assignments[name]; !newer && ok && a.Version == theirs[vkey{msgAssign, name}] && tagOf(a) != t {
			newer = true
		}
	}
	return recs, newer, nil
}

// EncodeRecords packs records into a sync letter's body.
func EncodeRecords(recs [][]byte) []byte {
	var e enc
	e.uvarint(uint64(len(recs)))
	for _, r := range recs {
		e.bytes(r)
	}
	return e.b
}

// DecodeRecords unpacks a sync letter's body.
func DecodeRecords(b []byte) ([][]byte, error) {
	d := dec{b: b}
	n := d.uvarint()
	if n > maxRecords {
		return nil, fmt.Errorf("%d records", n)
	}
	var out [][]byte
	for range n {
		out = append(out, d.bytes(maxBody))
	}
	return out, d.end()
}

// encodeDigest is this node's name, digest and record count after a type
// byte: stateDigest for the push/pull payload of a node that is not
// joining, msgDigest for the message added to gossip while news spreads.
func (s *State) encodeDigest(t byte, name string) []byte {
	dg, n := s.Digest()
	e := enc{b: []byte{t}}
	e.string(name)
	e.uvarint(dg)
	e.uvarint(uint64(n))
	return e.b
}

func decodeDigest(b []byte) (name string, digest uint64, n uint64, err error) {
	d := dec{b: b}
	if t := d.byte(); t != stateDigest {
		return "", 0, 0, fmt.Errorf("not a digest (type %d)", t)
	}
	name, digest, n = d.string(maxName), d.uvarint(), d.uvarint()
	return name, digest, n, d.end()
}
