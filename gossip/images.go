package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
)

// Images is what a node announces about the container images it can serve
// to its peers' registry mirrors: the image names it holds (each with the
// manifest digest and the time it was imported, so that the latest import
// of a name wins cluster-wide), and a Bloom filter of the digests of every
// blob those images reach. It is signed with the node's own key, like
// Health: a node can announce only for itself. A false positive of the
// filter costs a peer one refused request; every byte fetched is checked
// against its digest whatever the announcement says.
type Images struct {
	Name string `json:"name"`
	// Gen is the wall-clock time of the announcement (nanoseconds).
	Gen  uint64     `json:"gen"`
	Refs []ImageRef `json:"refs,omitempty"`
	// Blobs is a Bloom filter (BloomBytes long, or empty: nothing held)
	// of the sha256 digests of the blobs held.
	Blobs []byte `json:"-"`
	Sig   Sig    `json:"sig"`
}

// ImageRef is one image name a node holds.
type ImageRef struct {
	Ref      string   `json:"ref"`
	Digest   [32]byte `json:"-"`
	Imported int64    `json:"imported"`
}

// Limits and shape of an image announcement. With 4096 bits and 6 hashes
// the filter answers wrongly for about 0.05% of digests at 200 blobs held
// and 2% at 500.
const (
	BloomBytes      = 512
	bloomHashes     = 6
	MaxImageRefs    = 64
	maxImageRef     = 255
	maxImagesRecord = 4 * maxRecordSize
	domainImages    = "knode images v1\x00"
)

// msgImages is the message type of an Images announcement.
const msgImages byte = 7

// NewBloom is the filter of the given sha256 digests.
func NewBloom(digests [][32]byte) []byte {
	if len(digests) == 0 {
		return nil
	}
	f := make([]byte, BloomBytes)
	for _, d := range digests {
		for _, bit := range bloomBits(d) {
			f[bit/8] |= 1 << (bit % 8)
		}
	}
	return f
}

// BloomHas reports whether the filter may hold d (never false for a digest
// it was made from).
func BloomHas(f []byte, d [32]byte) bool {
	if len(f) != BloomBytes {
		return false
	}
	for _, bit := range bloomBits(d) {
		if f[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

// bloomBits derives the filter positions from the digest itself (a sha256
// is already uniform; a forged one only misleads its own author's peers
// into one refused request).
func bloomBits(d [32]byte) [bloomHashes]uint32 {
	var out [bloomHashes]uint32
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(d[4*i:]) % (BloomBytes * 8)
	}
	return out
}

func (m *Images) body(e *enc) {
	e.string(m.Name)
	e.uvarint(m.Gen)
	e.uvarint(uint64(len(m.Refs)))
	for _, r := range m.Refs {
		e.string(r.Ref)
		e.fixed(r.Digest[:])
		e.varint(r.Imported)
	}
	e.bytes(m.Blobs)
}

// SignedBytes is what the node signs.
func (m *Images) SignedBytes() []byte {
	e := enc{b: []byte(domainImages)}
	m.body(&e)
	return e.b
}

// Sign signs the announcement with the node's key.
func (m *Images) Sign(key ed25519.PrivateKey) { copy(m.Sig[:], ed25519.Sign(key, m.SignedBytes())) }

// EncodeImages is the broadcast message of an announcement.
func EncodeImages(m Images) []byte {
	e := enc{b: []byte{msgImages}}
	m.body(&e)
	e.fixed(m.Sig[:])
	return e.b
}

func decodeImages(b []byte) (Images, error) {
	if len(b) > maxImagesRecord {
		return Images{}, fmt.Errorf("image announcement of %d bytes exceeds %d", len(b), maxImagesRecord)
	}
	d := dec{b: b}
	m := Images{Name: d.string(maxName), Gen: d.uvarint()}
	n := d.uvarint()
	if n > MaxImageRefs {
		d.fail(fmt.Errorf("%d image names exceed %d", n, MaxImageRefs))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r := ImageRef{Ref: d.string(maxImageRef)}
		d.fixed(r.Digest[:])
		r.Imported = d.varint()
		m.Refs = append(m.Refs, r)
	}
	m.Blobs = d.bytes(BloomBytes)
	d.fixed(m.Sig[:])
	return m, d.end()
}

// validate checks an announcement's values (its signature is checked on
// merge, against the key its author's decision binds).
func (m Images) validate(nowNanos int64) error {
	switch {
	case !ValidName(m.Name):
		return fmt.Errorf("bad node name %q", m.Name)
	case m.Gen > uint64(nowNanos)+genLead:
		return fmt.Errorf("generation %d is ahead of this node's clock", m.Gen)
	case len(m.Refs) > MaxImageRefs:
		return fmt.Errorf("%d image names exceed %d", len(m.Refs), MaxImageRefs)
	case len(m.Blobs) != 0 && len(m.Blobs) != BloomBytes:
		return fmt.Errorf("blob filter of %d bytes, not %d", len(m.Blobs), BloomBytes)
	}
	seen := map[string]bool{}
	for _, r := range m.Refs {
		switch {
		case r.Ref == "" || len(r.Ref) > maxImageRef || !validText(r.Ref):
			return fmt.Errorf("bad image name %q", r.Ref)
		case seen[r.Ref]:
			return fmt.Errorf("image %s announced twice", r.Ref)
		case r.Imported <= 0 || r.Imported > nowNanos+int64(genLead):
			return fmt.Errorf("image %s: bad import time %d", r.Ref, r.Imported)
		}
		seen[r.Ref] = true
	}
	return nil
}

// MergeImages keeps the node's newest valid announcement, if it is signed
// with the key its decision binds: a node cannot announce for another.
func (s *State) MergeImages(m Images) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := m.validate(s.now().UnixNano()); err != nil {
		return false, err
	}
	old, ok := s.snap.Images[m.Name]
	if ok && old.Gen >= m.Gen {
		return false, nil
	}
	a, bound := s.snap.Assignments[m.Name]
	if !bound {
		return false, ErrUnbound
	}
	if !ed25519.Verify(a.SignKey[:], m.SignedBytes(), m.Sig[:]) {
		return false, fmt.Errorf("images of %s: %w", m.Name, ErrBadSig)
	}
	if ok {
		s.digest ^= digestOf(old.Sig)
	}
	s.digest ^= digestOf(m.Sig)
	if s.snap.Images == nil {
		s.snap.Images = map[string]Images{}
	}
	m.Refs, m.Blobs = slices.Clone(m.Refs), slices.Clone(m.Blobs)
	s.snap.Images[m.Name] = m
	s.notify()
	return true, nil
}

// dropImagesLocked forgets name's announcement (its name was bound to
// another key). Called with s.mu held.
func (s *State) dropImagesLocked(name string) {
	if m, held := s.snap.Images[name]; held {
		s.digest ^= digestOf(m.Sig)
		delete(s.snap.Images, name)
	}
}

// PublishImages signs this node's image announcement, keeps it and gossips
// it. Names beyond MaxImageRefs are left out, the oldest imports first.
func (n *Node) PublishImages(m Images) error {
	m.Name = n.name
	if len(m.Refs) > MaxImageRefs {
		m.Refs = slices.Clone(m.Refs)
		slices.SortFunc(m.Refs, func(a, b ImageRef) int { return int(min(max(b.Imported-a.Imported, -1), 1)) })
		m.Refs = m.Refs[:MaxImageRefs]
	}
	if _, bound := n.state.Binding(n.name); !bound {
		return ErrUnbound
	}
	m.Sign(n.key)
	ch, err := n.state.MergeImages(m)
	if err != nil {
		return fmt.Errorf("publish own images: %w", err)
	}
	if ch {
		n.queueMsg("i/"+m.Name, EncodeImages(m))
	}
	return nil
}
