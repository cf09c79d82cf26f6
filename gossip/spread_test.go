package gossip

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/hashicorp/memberlist"
)

// bundleNode is a running node holding the fixture's cluster.
func bundleNode(t *testing.T, f fixture) *Node {
	t.Helper()
	n, err := New(Config{Name: "n1", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Keys: [][]byte{make([]byte, 32)},
		SignKey: nodeKey(t), Timing: Fast}, f.state(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func rawBundle(msgs ...[]byte) []byte {
	e := enc{b: []byte{msgBundle}}
	e.uvarint(uint64(len(msgs)))
	for _, m := range msgs {
		e.bytes(m)
	}
	return e.b
}

// TestBundlesAreCheckedLikeEveryRecord: a bundle's records are merged (and
// relayed) or refused one by one like broadcast ones; a malformed bundle,
// or one carrying anything but records and a digest, changes nothing.
func TestBundlesAreCheckedLikeEveryRecord(t *testing.T) {
	f := newFixture(t)
	n := bundleNode(t, f)
	good := EncodeAssignment(f.decision("w1", nodeKey(t), "10.10.1.0/24", -1, 1))
	forged := f.decision("w2", nodeKey(t), "10.10.2.0/24", -1, 1)
	forged.Sign(nodeKey(t)) // not the decision key
	letter := EncodeLetter(Letter{Kind: LetterClaim, From: "w3", To: "n1"})

	d := delegate{n}
	d.NotifyMsg(rawBundle(good, EncodeAssignment(forged), n.state.encodeDigest(msgDigest, "w9")))
	snap := n.state.Snapshot()
	if _, ok := snap.Assignments["w1"]; !ok {
		t.Fatal("the valid decision in a bundle was not merged")
	}
	if _, ok := snap.Assignments["w2"]; ok {
		t.Fatal("a forged decision in a bundle was merged")
	}
	if n.queue.NumQueued() != 1 {
		t.Fatalf("%d records queued for relay, want the one that was news", n.queue.NumQueued())
	}
	if n.Rejected()["m0"] != 1 {
		t.Fatalf("refusals %v: want the forged decision counted under its claimed author", n.Rejected())
	}

	before, _ := n.state.Digest()
	over := make([][]byte, maxBundleRecords+1)
	for i := range over {
		over[i] = good
	}
	for name, b := range map[string][]byte{
		"a letter inside":  rawBundle(letter),
		"too many records": rawBundle(over...),
		"truncated":        rawBundle(good)[:len(good)/2],
		"trailing bytes":   append(rawBundle(good), 0),
		"empty message":    rawBundle(good, nil),
		"oversized":        append(rawBundle(good), make([]byte, maxBundle)...),
	} {
		rejected := n.Rejected()["(bundle)"]
		d.NotifyMsg(b)
		if n.Rejected()["(bundle)"] != rejected+1 {
			t.Errorf("%s: not refused (%v)", name, n.Rejected())
		}
	}
	if after, _ := n.state.Digest(); after != before {
		t.Fatal("a refused bundle changed the state")
	}
}

// TestBundleFitsOnePacket: a bundle never exceeds the room it is given, holds
// at most maxBundleRecords messages, ends with the digest, and is nil when
// nothing is queued; the queue's retransmit limit holds.
func TestBundleFitsOnePacket(t *testing.T) {
	f := newFixture(t)
	n := bundleNode(t, f)
	if b := n.bundle(1336); b != nil {
		t.Fatalf("a bundle of %d bytes with nothing queued", len(b))
	}
	for i := range 200 {
		a := f.decision(fmt.Sprintf("w%d", i), nodeKey(t), fmt.Sprintf("10.10.%d.0/24", i), -1, 1)
		n.queueMsg(fmt.Sprintf("a/w%d", i), EncodeAssignment(a))
	}
	sent := 0
	for n.queue.NumQueued() > 0 && sent < 10000 {
		b := n.bundle(1336)
		if len(b) > 1336 {
			t.Fatalf("bundle of %d bytes, room for 1336", len(b))
		}
		msgs, err := decodeBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) < 2 || len(msgs) > maxBundleRecords || msgs[len(msgs)-1][0] != msgDigest {
			t.Fatalf("bundle of %d messages, last of type %d", len(msgs), msgs[len(msgs)-1][0])
		}
		sent += len(msgs) - 1
	}
	// Alone, each record goes out RetransmitMult times (memberlist's
	// limit: the multiplier times ceil(log10(members+1)) = 1).
	if want := 200 * n.queue.RetransmitMult; sent != want {
		t.Fatalf("records sent %d times in all, want %d", sent, want)
	}
}

// TestRandomAliveSkipsSelfAndTheDead picks distinct alive members only.
func TestRandomAliveSkipsSelfAndTheDead(t *testing.T) {
	tab := &memberTable{m: map[string]Member{}, changed: func() {}}
	for i := range 10 {
		tab.update(&memberlist.Node{Name: fmt.Sprintf("n%d", i), Addr: []byte{127, 0, 0, 1}, Port: 7946}, StateAlive)
	}
	tab.update(&memberlist.Node{Name: "n3", Addr: []byte{127, 0, 0, 1}, Port: 7946}, StateDead)
	for range 100 {
		got := tab.randomAlive(3, "n0")
		seen := map[string]bool{}
		for _, m := range got {
			if m.Name == "n0" || m.Name == "n3" || seen[m.Name] {
				t.Fatalf("picked %v", got)
			}
			seen[m.Name] = true
		}
		if len(got) != 3 {
			t.Fatalf("picked %d of 8 alive others, want 3", len(got))
		}
	}
	if got := tab.randomAlive(20, "n0"); len(got) != 8 {
		t.Fatalf("picked %d, want all 8 alive others", len(got))
	}
}
