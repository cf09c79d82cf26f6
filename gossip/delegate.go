package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate adapts memberlist's callbacks to the owning Node.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
	_ memberlist.AliveDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	if len(d.n.meta) > limit {
		return nil
	}
	return d.n.meta
}

// NotifyMsg must not block and must not keep b.
func (d delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	n := d.n
	switch b[0] {
	case msgNode, msgAssign, msgToken, msgHealth, msgImages, msgDigest:
		n.receiveGossip(b)
	case msgBundle:
		n.receiveBundle(b)
	case msgLetter:
		l, err := decodeLetter(b[1:])
		if err == nil {
			err = n.verifyLetter(l)
		}
		if err != nil {
			n.rejects.add(safeName(l.From), fmt.Errorf("letter %s: %w", l.Kind, err))
			return
		}
		switch l.Kind {
		case LetterSyncReq:
			// A node without its own decision cannot answer: its letters
			// are not yet verifiable, and the asker would refuse them.
			if _, bound := n.state.Binding(n.name); bound && n.ready.Load() {
				go n.answerSync(l)
			}
		case LetterSyncData:
			n.mergeSync(l)
		default:
			select {
			case n.letters <- l:
			default: // the sender resends
			}
		}
	default:
		n.rejects.add("(unknown)", fmt.Errorf("unknown message type %d", b[0]))
	}
}

// receiveGossip merges one broadcast record, or compares a sender's digest
// with ours.
func (n *Node) receiveGossip(b []byte) {
	switch b[0] {
	case msgNode, msgAssign, msgToken, msgHealth, msgImages:
		limit := maxRecordSize
		if b[0] == msgImages {
			limit = maxImagesRecord // spreads by anti-entropy when too large for a packet
		}
		if len(b) > limit {
			n.rejects.add("(oversized)", fmt.Errorf("record of %d bytes", len(b)))
			return
		}
		ch, key, author, err := n.state.MergeMessage(b)
		if err != nil && !errors.Is(err, ErrUnbound) && !errors.Is(err, ErrStale) {
			n.rejects.add(author, err)
		}
		// memberlist does not pass delegate messages on: news that arrived
		// by broadcast is queued again, so it spreads epidemically (as serf
		// does). What push/pull or a sync brings is not.
		if ch {
			n.queueMsg(key, bytes.Clone(b))
		}
	case msgDigest:
		dd := dec{b: b[1:]}
		name, dg, count := dd.string(maxName), dd.uvarint(), dd.uvarint()
		if dd.end() != nil || !ValidName(name) {
			n.rejects.add("(digest)", errors.New("bad digest message"))
			return
		}
		if mine, have := n.state.Digest(); dg != mine && count > uint64(have) {
			n.requestSync(name)
		}
	}
}

// verifyLetter checks a letter's address and signature: a claim is signed by
// the key it claims; any other letter by the key its author's decision binds.
func (n *Node) verifyLetter(l Letter) error {
	if l.To != n.name {
		return fmt.Errorf("addressed to %s", l.To)
	}
	if l.Kind == LetterClaim {
		c, err := DecodeClaim(l.Body)
		if err != nil {
			return err
		}
		if c.Name != l.From || !l.Verify(c.SignKey) {
			return fmt.Errorf("claim for %s: %w", c.Name, ErrBadSig)
		}
		return nil
	}
	a, ok := n.state.Binding(l.From)
	if !ok && len(l.Cred) > 1 && l.Cred[0] == msgAssign {
		// An author this node has not heard of yet: its decision came along.
		if cred, err := decodeAssignment(l.Cred[1:]); err == nil && cred.Node == l.From {
			if _, err := n.state.MergeAssignment(cred); err != nil {
				return fmt.Errorf("author's decision: %w", err)
			}
			a, ok = n.state.Binding(l.From)
		}
	}
	if !ok {
		return ErrUnbound
	}
	if !l.Verify(a.SignKey) {
		return ErrBadSig
	}
	return nil
}

// GetBroadcasts fills a gossip packet with queued records and, when there
// are any, this node's digest: while news spreads, a node that holds fewer
// records than a sender pulls what it lacks at once instead of at its next
// probe. At rest nothing is queued, memberlist sends nothing, and this costs
// nothing.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	dg := d.n.state.encodeDigest(msgDigest, d.n.name)
	msgs := d.n.queue.GetBroadcasts(overhead, limit-overhead-len(dg))
	if len(msgs) == 0 {
		return nil
	}
	return append(msgs, dg)
}

// LocalState is the whole state for a joining node, else a digest.
func (d delegate) LocalState(join bool) []byte {
	if join {
		return d.n.state.EncodeFull()
	}
	return d.n.state.encodeDigest(stateDigest, d.n.name)
}

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	n := d.n
	if len(buf) == 0 {
		return
	}
	switch buf[0] {
	case stateFull:
		_, rej, err := n.state.MergeFull(buf)
		for _, r := range rej {
			if r.Author == "cluster" {
				n.clusterErr.Store(&r)
			}
			n.rejects.add(r.Author, r.Err)
		}
		if err != nil {
			n.rejects.add("(push/pull)", err)
		}
	case stateDigest:
		name, dg, _, err := decodeDigest(buf)
		if err != nil || !ValidName(name) {
			n.rejects.add("(push/pull)", fmt.Errorf("bad digest: %v", err))
			return
		}
		if mine, _ := n.state.Digest(); mine != dg {
			n.requestSync(name)
		}
	default:
		n.rejects.add("(push/pull)", fmt.Errorf("unknown state type %d", buf[0]))
	}
}

// AckPayload carries this node's digest with every probe's answer.
func (d delegate) AckPayload() []byte {
	dg, _ := d.n.state.Digest()
	var e enc
	e.uvarint(dg)
	return e.b
}

// NotifyPingComplete compares the probed node's digest with ours; a
// mismatch starts a delta sync with it.
func (d delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, payload []byte) {
	if len(payload) == 0 || other == nil {
		return
	}
	dd := dec{b: payload}
	dg := dd.uvarint()
	if dd.end() != nil {
		return
	}
	if mine, _ := d.n.state.Digest(); mine != dg {
		d.n.requestSync(other.Name)
	}
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

// requestSync sends our version vector to peer, at most once a second per
// peer, and only once this node is bound (letters are signed).
func (n *Node) requestSync(peer string) {
	if !n.ready.Load() || peer == n.name || !n.syncs.allow("req/"+peer, time.Second) || !n.syncs.allow("req", 200*time.Millisecond) {
		return
	}
	if _, ok := n.state.Binding(n.name); !ok {
		return
	}
	go func() {
		if err := n.Send(Letter{Kind: LetterSyncReq, To: peer, Body: n.state.Vector()}); err != nil {
			n.log.Debug("sync request", "to", peer, "err", err)
		}
	}()
}

// answerSync sends a peer the records it lacks, and asks it in turn when it
// holds something newer.
func (n *Node) answerSync(l Letter) {
	if !n.syncs.allow("ans/"+l.From, 200*time.Millisecond) {
		return
	}
	recs, newer, err := n.state.Delta(l.Body)
	if err != nil {
		n.rejects.add(l.From, fmt.Errorf("sync request: %w", err))
		return
	}
	if len(recs) > 0 {
		if err := n.Send(Letter{Kind: LetterSyncData, To: l.From, Body: EncodeRecords(recs)}); err != nil {
			n.log.Debug("sync answer", "to", l.From, "err", err)
		}
	}
	if newer {
		n.requestSync(l.From)
	}
}

func (n *Node) mergeSync(l Letter) {
	recs, err := DecodeRecords(l.Body)
	if err != nil {
		n.rejects.add(l.From, fmt.Errorf("sync data: %w", err))
		return
	}
	_, rej := n.state.MergeRecords(recs)
	for _, r := range rej {
		n.rejects.add(r.Author, r.Err)
	}
}

// rejectLog counts refused input per claimed author and logs the first
// refusal of each author (a hostile peer cannot flood the log).
type rejectLog struct {
	mu     sync.Mutex
	log    *slog.Logger
	counts map[string]uint64
}

// maxRejectAuthors bounds the counter map; further authors share one entry.
const maxRejectAuthors = 256

func (r *rejectLog) add(author string, err error) {
	// "(label)" names a kind of input without an author ("(oversized)",
	// "(joiner)"): kept as it is; anything else must be a node name.
	if !strings.HasPrefix(author, "(") || !strings.HasSuffix(author, ")") || len(author) > 20 {
		author = safeName(author)
	}
	r.mu.Lock()
	if _, ok := r.counts[author]; !ok && len(r.counts) >= maxRejectAuthors {
		author = "(others)"
	}
	r.counts[author]++
	first := r.counts[author] == 1
	r.mu.Unlock()
	if first {
		r.log.Warn("refused gossip input (further refusals from this author are only counted)", "author", author, "err", err)
	}
}

func (r *rejectLog) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// syncLimiter spaces out repeated actions by key.
type syncLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func newSyncLimiter() *syncLimiter { return &syncLimiter{last: map[string]time.Time{}} }

func (s *syncLimiter) allow(key string, every time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.last[key]) < every {
		return false
	}
	if len(s.last) > 4096 {
		for k, t := range s.last {
			if now.Sub(t) > time.Minute {
				delete(s.last, k)
			}
		}
	}
	s.last[key] = now
	return true
}
