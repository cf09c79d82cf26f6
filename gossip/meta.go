package gossip

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// memberlist believes any alive message: a member holding the gossip key
// could announce another node's name at its own address (memberlist takes a
// dead name back from any address at once), and the letters meant for that
// node would come to it. A decided name's address is the one its decision
// binds (signed by the decision key), so an alive message for it is accepted
// only at that address. A node that comes back elsewhere (a new port, a new
// IP) claims its new address by letter to the masters, which need no
// membership; once the decision follows, its alive messages are taken. A name
// not yet decided, or released, is nobody's: a joiner is taken at its word
// until its decision exists. (Checking the decision rather than signing the
// meta keeps memberlist's state small: every push/pull carries every node's
// meta.)

// NotifyAlive refuses an alive message for a decided name announced at
// another address than its decision binds.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	n := d.n
	if peer.Name == n.name {
		return nil
	}
	want, bound := n.state.BoundAddr(peer.Name)
	if !bound {
		return nil
	}
	ip, _ := netip.AddrFromSlice(peer.Addr)
	if got := netip.AddrPortFrom(ip.Unmap(), peer.Port); got != want {
		err := fmt.Errorf("alive message for %s at %s: its decision binds %s", peer.Name, got, want)
		n.rejects.add(safeName(peer.Name), err)
		return err
	}
	return nil
}

// metaVersion reads the knode version a node put in its meta (display only).
func metaVersion(meta []byte) string {
	if s := string(meta); validText(s) && len(s) <= 64 {
		return s
	}
	return "?"
}
