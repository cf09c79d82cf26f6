package gossip

import (
	"encoding/json"

	"github.com/hashicorp/memberlist"
)

// delegate adapts memberlist's callbacks to the owning Node.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte { return nil }

// NotifyMsg must not block and must not keep b.
func (d delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	body := b[1:]
	switch b[0] {
	case msgNode:
		var n NodeInfo
		if json.Unmarshal(body, &n) == nil {
			d.n.state.MergeNode(n)
		}
	case msgAssign:
		var a Assignment
		if json.Unmarshal(body, &a) == nil {
			d.n.state.MergeAssignment(a)
		}
	case msgSecrets:
		var s Sealed
		if json.Unmarshal(body, &s) == nil && s.To == d.n.name {
			select {
			case d.n.secrets <- s:
			default: // a resend will come
			}
		}
	default:
		d.n.log.Debug("unknown gossip message", "type", b[0])
	}
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.queue.GetBroadcasts(overhead, limit)
}

func (d delegate) LocalState(join bool) []byte {
	b, err := json.Marshal(d.n.state.Snapshot())
	if err != nil {
		d.n.log.Error("encode local state", "err", err)
		return nil
	}
	return b
}

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	var s Snapshot
	if err := json.Unmarshal(buf, &s); err != nil {
		d.n.log.Warn("undecodable remote state", "err", err)
		return
	}
	d.n.state.Merge(s)
}

func (d delegate) NotifyJoin(m *memberlist.Node)   { d.n.members.update(m, StateAlive) }
func (d delegate) NotifyUpdate(m *memberlist.Node) { d.n.members.update(m, StateAlive) }
func (d delegate) NotifyLeave(m *memberlist.Node) {
	st := StateDead
	if m.State == memberlist.StateLeft {
		st = StateLeft
	}
	d.n.members.update(m, st)
}
