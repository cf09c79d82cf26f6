package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// hostile is a token holder that speaks raw gossip: a memberlist member
// with the cluster's gossip key and a node key of its own, that sends
// whatever bytes it likes.
type hostile struct {
	t         *testing.T
	name      string
	key       ed25519.PrivateKey
	ml        *memberlist.Memberlist
	queue     *memberlist.TransmitLimitedQueue
	token     pki.Token // the worker token it was admitted with
	gossipKey []byte    // what admission gave it

	mu    sync.Mutex
	kinds map[gossip.LetterKind]int // letters received, by kind
}

type rawBroadcast []byte

func (b rawBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b rawBroadcast) Message() []byte                       { return b }
func (b rawBroadcast) Finished()                             {}

func (h *hostile) NodeMeta(int) []byte { return []byte("evil") }
func (h *hostile) NotifyMsg(b []byte) {
	if len(b) > 1 && b[0] == 3 { // a letter: its kind is the next byte
		h.mu.Lock()
		h.kinds[gossip.LetterKind(b[1])]++
		h.mu.Unlock()
	}
}
func (h *hostile) GetBroadcasts(overhead, limit int) [][]byte {
	return h.queue.GetBroadcasts(overhead, limit)
}
func (h *hostile) LocalState(bool) []byte        { return nil }
func (h *hostile) MergeRemoteState([]byte, bool) {}

func newHostile(t *testing.T, tc *testCluster, name, via string) *hostile {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	h := &hostile{t: t, name: name, key: key, kinds: map[gossip.LetterKind]int{}, token: tc.token}
	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = name, "127.0.0.1", 0
	mc.GossipInterval, mc.ProbeInterval, mc.ProbeTimeout = 50*time.Millisecond, 500*time.Millisecond, 400*time.Millisecond
	// A token holder is admitted like any joiner: it gets the gossip key.
	adm, err := gossip.Admit(context.Background(), tc.addr(via), tc.token)
	if err != nil {
		t.Fatal(err)
	}
	mc.SecretKey = adm.Keys[0]
	h.gossipKey = adm.Keys[0]
	mc.Delegate = h
	mc.LogOutput = discard{}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	h.ml = ml
	h.queue = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: 4}
	if _, err := ml.Join([]string{tc.addr(via)}); err != nil {
		t.Fatal(err)
	}
	return h
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func (h *hostile) pub() gossip.Key { return gossip.Key(h.key.Public().(ed25519.PublicKey)) }

func (h *hostile) broadcast(msg []byte) { h.queue.QueueBroadcast(rawBroadcast(msg)) }

// letter sends a letter signed with the hostile's own key, under any From.
func (h *hostile) letter(kind gossip.LetterKind, from, to string, body []byte) {
	l := gossip.Letter{Kind: kind, From: from, To: to, Time: time.Now().UnixNano(), Body: body}
	l.Sign(h.key)
	h.raw(to, gossip.EncodeLetter(l))
}

func (h *hostile) raw(to string, msg []byte) {
	for _, m := range h.ml.Members() {
		if m.Name == to {
			if err := h.ml.SendReliable(m, msg); err != nil {
				h.t.Logf("hostile send to %s: %v", to, err)
			}
		}
	}
}

// claim asks to be admitted under name with the hostile's key.
func (h *hostile) claim(name, to string) {
	c := gossip.Claim{Name: name, SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"),
		Port: uint16(h.ml.LocalNode().Port), Time: time.Now().UnixNano(), TokenID: h.token.ID()}
	c.Proof = gossip.SeatProof(gossip.Key(h.token.Verifier()), name, h.pub())
	c.Sign(h.key)
	h.letter(gossip.LetterClaim, name, to, gossip.EncodeClaim(c))
}

func (h *hostile) received(k gossip.LetterKind) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kinds[k]
}

// honestView is what the honest agents hold about the honest nodes.
func honestView(tc *testCluster, honest []string) map[string]string {
	out := map[string]string{}
	for name, a := range tc.live() {
		snap := a.Snapshot()
		var b strings.Builder
		for _, n := range honest {
			as, ni, he := snap.Assignments[n], snap.Nodes[n], snap.Health[n]
			fmt.Fprintf(&b, "%s:%x:%x:%x;", n, as.Sig[:8], ni.Sig[:8], he.Sig[:8])
		}
		for _, id := range slices.Sorted(maps.Keys(snap.Tokens)) {
			sig := snap.Tokens[id].Sig
			fmt.Fprintf(&b, "token %s:%x;", id, sig[:8])
		}
		fmt.Fprintf(&b, "keys=%x;", a.g.Keys())
		fmt.Fprintf(&b, "masters=%v clock<%d", roles.Masters(snap), uint64(1)<<40)
		if snap.Clock >= 1<<40 {
			b.WriteString("CLOCK JUMPED")
		}
		out[name] = b.String()
	}
	return out
}

// TestHostileTokenHolder runs a token holder that tries every attack on the
// agreement; none may change what the honest nodes hold, each is counted,
// and the master keys never leave the masters.
func TestHostileTokenHolder(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	for _, n := range []string{"n01", "n02", "w03", "w04"} {
		tc.join(n, "n00")
		tc.waitConverged(10*time.Second, len(tc.live()))
	}
	honest := []string{"n00", "n01", "n02", "w03", "w04"}
	h := newHostile(t, tc, "evil", "w03")

	// A worker's place, honestly claimed: a token admits a machine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.claim("evil", "n00")
		if as, ok := tc.live()["n00"].Snapshot().Assignments["evil"]; ok {
			if as.Seat != roles.Worker || as.SignKey != h.pub() {
				t.Fatalf("evil admitted as %+v", as)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a token holder's honest claim was not granted")
		}
		time.Sleep(300 * time.Millisecond)
	}
	tc.waitConverged(10*time.Second, 6)
	// An older decision of w04, for a replay: w04 restarts on a new port.
	oldW04 := tc.live()["w04"].Snapshot().Assignments["w04"]
	tc.kill("w04")
	if _, err := tc.start("w04", []string{"n00"}, nil, tc.token, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "w04's address update", func() bool {
		return tc.live()["n00"].Snapshot().Assignments["w04"].Version > oldW04.Version
	})
	tc.waitConverged(10*time.Second, 6)
	var before map[string]string
	waitFor(t, 10*time.Second, "every node to hold the same records", func() bool {
		before = honestView(tc, honest)
		for _, v := range before {
			if v != before["n00"] {
				return false
			}
		}
		return true
	})

	now := uint64(time.Now().UnixNano())
	next := tc.live()["n00"].Snapshot().Clock + 10 // a plausible version: only the signature stops these
	signed := func(a gossip.Assignment) []byte { a.Sign(h.key); return gossip.EncodeAssignment(a) }
	minted, _ := pki.ParseToken(tc.token.String())
	minted.Secret[0] ^= 0xff
	token := func(r gossip.TokenRecord) []byte { r.Sign(h.key); return gossip.EncodeToken(r) }
	initTok, _ := tc.live()["n00"].state.Token(tc.token.ID())
	node := func(n gossip.NodeInfo) []byte { n.Sign(h.key); return gossip.EncodeNode(n) }
	attacks := map[string]func(){
		"claim a seat": func() {
			h.broadcast(signed(gossip.Assignment{Node: "evil", SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 1,
				PodCIDR: netip.MustParsePrefix("10.10.9.0/24"), Seat: 0, Version: next, By: "n00"}))
		},
		"seat with a clock jump": func() {
			h.broadcast(signed(gossip.Assignment{Node: "evil", SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 1,
				PodCIDR: netip.MustParsePrefix("10.10.9.0/24"), Seat: 2, Version: 1 << 40, By: "n00"}))
		},
		"announce master keys": func() { h.broadcast(node(gossip.NodeInfo{Name: "evil", HasSecrets: true, Gen: now})) },
		"overwrite a master's record": func() {
			h.broadcast(node(gossip.NodeInfo{Name: "n01", Removed: true, Gen: now + 1}))
		},
		"release a live node": func() {
			h.broadcast(signed(gossip.Assignment{Node: "w03", Seat: -1, Released: true, Version: next, By: "n00"}))
		},
		"rebind a master's key": func() {
			h.broadcast(signed(gossip.Assignment{Node: "n01", SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 1,
				PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), Seat: 1, Version: math.MaxUint64, By: "n00"}))
		},
		"report another node's health": func() {
			bad := gossip.Health{Name: "n01", Gen: now, Checks: []gossip.Check{{What: gossip.CompEtcd, Detail: "down"}}}
			bad.Sign(h.key)
			h.broadcast(gossip.EncodeHealth(bad))
		},
		"freeze own record": func() { h.broadcast(node(gossip.NodeInfo{Name: "evil", Gen: math.MaxUint64})) },
		"option as a name": func() {
			h.broadcast(node(gossip.NodeInfo{Name: "--all", Removed: true, Gen: now}))
			h.broadcast(signed(gossip.Assignment{Node: "--all", Seat: -1, Released: true, Version: 9, By: "n00"}))
		},
		"subnet outside the range": func() {
			h.broadcast(signed(gossip.Assignment{Node: "evil", SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 1,
				PodCIDR: netip.MustParsePrefix("192.168.0.0/23"), Seat: -1, Version: 99, By: "n00"}))
		},
		"truncated and oversized": func() {
			good := gossip.EncodeAssignment(tc.live()["n00"].Snapshot().Assignments["w03"])
			h.broadcast(good[:len(good)/2])
			h.raw("n00", append([]byte{2}, make([]byte, 60<<10)...))
			h.raw("n01", append([]byte{3, 3}, make([]byte, 2<<20)...))
		},
		"replay an old decision": func() { h.broadcast(gossip.EncodeAssignment(oldW04)) },
		"certificate for another name": func() {
			h.letter(gossip.LetterCSR, "w03", "n00", []byte(`{"kubelet":"x"}`))
		},
		"secrets to a worker":   func() { h.letter(gossip.LetterSecrets, "evil", "w03", []byte("not a sealed box")) },
		"refuse an honest node": func() { h.letter(gossip.LetterRefused, "evil", "w03", []byte("go away")) },
		"claim a taken name":    func() { h.claim("w03", "n00") },
		"invent a node without a token": func() {
			c := gossip.Claim{Name: "ghost", SignKey: h.pub(), BoxKey: h.pub(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 9, Time: time.Now().UnixNano()}
			c.Sign(h.key)
			h.letter(gossip.LetterClaim, "ghost", "n00", gossip.EncodeClaim(c))
		},
		"mint a token": func() {
			h.broadcast(token(gossip.TokenRecord{ID: minted.ID(), Verifier: gossip.Key(minted.Verifier()), Gen: now, By: "n00"}))
		},
		"extend a token": func() {
			ext := initTok
			ext.Expires, ext.Gen = 0, now
			h.broadcast(token(ext))
		},
		"gossip key to a worker": func() {
			w03 := tc.live()["n00"].Snapshot().Assignments["w03"].BoxKey
			box, _ := pki.Seal(w03[:], append([]byte{byte(gossip.KeyUse)}, make([]byte, 32)...), []byte("w03"))
			h.letter(gossip.LetterKey, "evil", "w03", box)
		},
		"sync garbage": func() {
			h.letter(gossip.LetterSyncData, "evil", "n02", gossip.EncodeRecords([][]byte{{2, 0xff}, {1}}))
		},
	}
	for name, attack := range attacks {
		t.Logf("attack: %s", name)
		attack()
	}
	time.Sleep(3 * time.Second) // broadcasts spread, syncs run
	after := honestView(tc, honest)
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s's state changed:\nbefore %s\nafter  %s", name, v, after[name])
		}
	}
	var refused uint64
	for name, a := range tc.live() {
		snap := a.Snapshot()
		if as := snap.Assignments["evil"]; as.Seat != roles.Worker || roles.IsMaster(snap, "evil") {
			t.Errorf("%s sees evil as %+v", name, as)
		}
		if _, ok := snap.Assignments["--all"]; ok {
			t.Errorf("%s stored a decision named --all", name)
		}
		if _, ok := snap.Assignments["ghost"]; ok {
			t.Errorf("%s holds a decision for a name claimed without a token", name)
		}
		if _, err := a.HostSpec(nil); err != nil && !strings.Contains(err.Error(), "no pod subnet") {
			t.Errorf("%s cannot build its host spec: %v", name, err)
		}
		for _, c := range a.Status().Refused {
			refused += c
		}
	}
	if refused < uint64(len(attacks)) {
		t.Errorf("only %d refusals counted for %d attacks", refused, len(attacks))
	}
	if _, err := gossip.Admit(context.Background(), tc.addr("w03"), minted); !errors.Is(err, gossip.ErrTokenRefused) {
		t.Errorf("a token the hostile node minted admitted a machine: %v", err)
	}
	if n := h.received(gossip.LetterSecrets); n != 0 {
		t.Errorf("the hostile node received %d letters of master secrets", n)
	}
	if n := len(tc.live()["w03"].refused); n != 0 {
		t.Error("a refusal from a node that is no master was taken")
	}
	for _, w := range []string{"w03", "w04"} {
		if tc.live()[w].HasSecrets() || tc.dir(w).Exists("secrets/ca.key") {
			t.Errorf("worker %s holds master keys", w)
		}
	}
	t.Logf("refusals counted across the cluster: %d", refused)

	// A dead node's name announced at the attacker's address: memberlist
	// alone takes a dead name back from any address at once (so that a
	// restarted machine can come back), and would send that node's letters
	// to the attacker.
	realW04 := tc.addr("w04")
	tc.kill("w04")
	waitState(t, tc.live()["n00"], "w04", gossip.StateDead)
	spoof := memberlist.DefaultLocalConfig()
	spoof.Name, spoof.BindAddr, spoof.BindPort, spoof.LogOutput = "w04", "127.0.0.1", 0, discard{}
	spoof.SecretKey = h.gossipKey
	spoof.Delegate = &hostile{t: t, name: "w04", key: h.key, kinds: map[gossip.LetterKind]int{},
		queue: &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 1 }}}
	sml, err := memberlist.Create(spoof)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sml.Shutdown() })
	if _, err := sml.Join([]string{tc.addr("w03")}); err != nil {
		t.Logf("spoofer's join: %v", err)
	}
	time.Sleep(2 * time.Second)
	for name, a := range tc.live() {
		for _, m := range a.g.Members() {
			if m.Name == "w04" && m.State == gossip.StateAlive && m.Addr.String() != realW04 {
				t.Errorf("%s takes the spoofer at %s for w04", name, m.Addr)
			}
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
