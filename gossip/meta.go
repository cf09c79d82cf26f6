package gossip

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// memberlist believes any alive message: a member holding the gossip key
// could announce another node's name at its own address, and the letters
// meant for that node would come to it. So every node puts in its
// memberlist meta its address and version, signed with its node key; an
// alive message for a name whose decision binds a key is accepted only with
// that key's signature over the very address it announces. (A name not yet
// decided, or released, is nobody's: a joiner is taken at its word until its
// decision exists.)

const metaTag = 0xA1 // first byte of a signed meta

// nodeMeta is what a node announces in memberlist's meta.
type nodeMeta struct {
	Version string
	Addr    netip.AddrPort
	Sig     Sig
}

func (m *nodeMeta) signedBytes(name string) []byte {
	e := enc{b: []byte(domainMeta)}
	e.string(name)
	e.addr(m.Addr.Addr())
	e.uvarint(uint64(m.Addr.Port()))
	e.string(m.Version)
	return e.b
}

func encodeMeta(name string, m nodeMeta, key ed25519.PrivateKey) []byte {
	copy(m.Sig[:], ed25519.Sign(key, m.signedBytes(name)))
	e := enc{b: []byte{metaTag}}
	e.string(m.Version)
	e.addr(m.Addr.Addr())
	e.uvarint(uint64(m.Addr.Port()))
	e.fixed(m.Sig[:])
	return e.b
}

func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) == 0 || b[0] != metaTag {
		return nodeMeta{}, errors.New("unsigned node meta")
	}
	d := dec{b: b[1:]}
	var m nodeMeta
	m.Version = d.string(64)
	a, p := d.addr(), d.port()
	m.Addr = netip.AddrPortFrom(a, p)
	d.fixed(m.Sig[:])
	return m, d.end()
}

// metaVersion reads the knode version a node put in its meta (display only).
func metaVersion(meta []byte) string {
	if m, err := decodeMeta(meta); err == nil && validText(m.Version) {
		return m.Version
	}
	return "?"
}

// NotifyAlive refuses an alive message for a decided name unless the
// name's key signed the address it announces.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	n := d.n
	if peer.Name == n.name {
		return nil
	}
	a, bound := n.state.Binding(peer.Name)
	if !bound || a.Released {
		return nil
	}
	err := verifyMeta(peer, a.SignKey)
	if err != nil {
		n.rejects.add(safeName(peer.Name), fmt.Errorf("alive message: %w", err))
	}
	return err
}

func verifyMeta(peer *memberlist.Node, key Key) error {
	m, err := decodeMeta(peer.Meta)
	if err != nil {
		return err
	}
	ip, _ := netip.AddrFromSlice(peer.Addr)
	if m.Addr != netip.AddrPortFrom(ip.Unmap(), peer.Port) {
		return fmt.Errorf("announced at %s, signed for %s", netip.AddrPortFrom(ip.Unmap(), peer.Port), m.Addr)
	}
	if !ed25519.Verify(key[:], m.signedBytes(peer.Name), m.Sig[:]) {
		return fmt.Errorf("meta of %s: %w", peer.Name, ErrBadSig)
	}
	return nil
}

// SignedMeta is the memberlist meta a node with this name, key and address
// announces (for tools and tests that speak memberlist directly).
func SignedMeta(name, version string, addr netip.AddrPort, key ed25519.PrivateKey) []byte {
	return encodeMeta(name, nodeMeta{Version: version, Addr: addr}, key)
}
