package gossip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/memberlist"
)

// Records spread in packets of their own.
//
// memberlist fills each gossip packet with its own broadcasts first (alive,
// suspect, dead) and offers the delegate only the room left. While a cluster
// forms, alive messages fill every packet: measured with 200 agents forming
// at once, every call for the delegate's broadcasts had under 300 bytes to
// give, and the allocator's 203 decisions sat in its queue for seconds, so
// the nodes that had not heard them (most) had nothing to pull either. So
// each node also runs a gossip round of its own for records: every gossip
// interval, while records are queued, it sends a bundle of them (with its
// digest, so that a peer behind it pulls the rest at once) to a random live
// member. The queue is the same one memberlist's packets draw on, with
// the same retransmit limit; at rest it is empty and nothing is sent.

// msgBundle is a packet of records and a digest, sent by spread.
const msgBundle byte = 8

const (
	// spreadFanout is how many random members each round's bundle goes to.
	// One: with memberlist's three, 200 agents forming in one process on two
	// cores saturated it (failed probes, false suspicion) and agreed in
	// 6.8-10.9 s, against 5.4-7.3 s with one.
	spreadFanout = 1
	// maxBundleRecords bounds the records one bundle may carry.
	maxBundleRecords = 64
	// maxBundle bounds a bundle's size on receipt (a UDP datagram).
	maxBundle = 64 << 10
	// bundleOverhead is what memberlist adds to a message it sends as a
	// packet of its own: the message type, the packet's checksum and label,
	// and its encryption (version, nonce, tag), with room to spare.
	bundleOverhead = 64
)

// spread runs this node's gossip round for records until stop is closed.
func (n *Node) spread(interval time.Duration, fanout, packet int, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n.queue.NumQueued() == 0 {
			continue
		}
		for _, m := range n.members.randomAlive(fanout, n.name) {
			b := n.bundle(packet - bundleOverhead)
			if b == nil {
				break
			}
			to := &memberlist.Node{Name: m.Name, Addr: m.Addr.Addr().AsSlice(), Port: m.Addr.Port()}
			if err := n.ml.SendBestEffort(to, b); err != nil {
				n.log.Debug("send records", "to", m.Name, "err", err)
			}
		}
	}
}

// bundle takes queued records filling at most size bytes, followed by this
// node's digest; nil when nothing is queued.
func (n *Node) bundle(size int) []byte {
	dg := n.state.encodeDigest(msgDigest, n.name)
	// Each record is framed by its length (at most 3 bytes: records are
	// bounded well below 2 MiB); the header is the type and the count.
	msgs := n.queue.GetBroadcasts(3, size-len(dg)-3-2)
	if len(msgs) == 0 {
		return nil
	}
	msgs = msgs[:min(len(msgs), maxBundleRecords-1)]
	e := enc{b: []byte{msgBundle}}
	e.uvarint(uint64(len(msgs) + 1))
	for _, m := range msgs {
		e.bytes(m)
	}
	e.bytes(dg)
	return e.b
}

// receiveBundle handles each record and the digest a bundle carries; a
// malformed bundle is refused whole, anything but records and a digest
// inside it is refused.
func (n *Node) receiveBundle(b []byte) {
	msgs, err := decodeBundle(b)
	if err != nil {
		n.rejects.add("(bundle)", err)
		return
	}
	for _, m := range msgs {
		switch m[0] {
		case msgNode, msgAssign, msgToken, msgHealth, msgImages, msgDigest:
			n.receiveGossip(m)
		default:
			n.rejects.add("(bundle)", fmt.Errorf("message type %d in a bundle", m[0]))
		}
	}
}

func decodeBundle(b []byte) ([][]byte, error) {
	if len(b) > maxBundle {
		return nil, fmt.Errorf("bundle of %d bytes exceeds %d", len(b), maxBundle)
	}
	d := dec{b: b}
	if t := d.byte(); t != msgBundle {
		return nil, fmt.Errorf("not a bundle (type %d)", t)
	}
	count := d.uvarint()
	if count > maxBundleRecords {
		return nil, fmt.Errorf("bundle of %d messages exceeds %d", count, maxBundleRecords)
	}
	msgs := make([][]byte, 0, count)
	for range count {
		m := d.bytes(maxImagesRecord)
		if d.err == nil && len(m) == 0 {
			return nil, errors.New("empty message in a bundle")
		}
		msgs = append(msgs, m)
	}
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return msgs, nil
}

// randomAlive picks up to k alive members other than self, at random.
func (t *memberTable) randomAlive(k int, self string) []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Member
	seen := 0
	for name, m := range t.m {
		if m.State != StateAlive || name == self {
			continue
		}
		// Reservoir sampling: each alive member ends up chosen with
		// probability k/seen.
		if seen++; len(out) < k {
			out = append(out, m)
		} else if j := rand.IntN(seen); j < k {
			out[j] = m
		}
	}
	return out
}
