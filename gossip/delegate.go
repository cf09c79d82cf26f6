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
	// memberlist does not pass delegate messages on: a record that is news
	// here is queued again, so it spreads epidemically (as serf does).
	switch b[0] {
	case msgNode:
		var n NodeInfo
		if json.Unmarshal(body, &n) == nil && d.n.state.MergeNode(n) {
			d.n.requeue("n/"+n.Name, b)
		}
	case msgAssign:
		var a Assignment
		if json.Unmarshal(body, &a) == nil && d.n.state.MergeAssignment(a) {
			d.n.requeue("a/"+a.Node, b)
		}
	case msgLetter:
		var l Letter
		if json.Unmarshal(body, &l) == nil && l.To == d.n.name {
			select {
			case d.n.letters <- l:
			default: // the sender resends
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
	for _, n := range s.Nodes {
		if d.n.state.MergeNode(n) {
			d.n.queueRecord("n/"+n.Name, msgNode, n)
		}
	}
	for _, a := range s.Assignments {
		if d.n.state.MergeAssignment(a) {
			d.n.queueRecord("a/"+a.Node, msgAssign, a)
		}
	}
	d.n.state.Merge(Snapshot{Cluster: s.Cluster, Clock: s.Clock})
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
