package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

// TestTokenLifecycle: a token made on a master admits machines through any
// member; a deleted or expired one admits nobody, while nodes that joined
// with it stay; workers cannot make tokens; joiners keep the cluster's
// gossip key, not the token.
func TestTokenLifecycle(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	n00 := tc.live()["n00"]
	w01 := tc.join("w01", "n00")
	tc.waitConverged(10*time.Second, 2)

	if _, err := w01.CreateToken(TokenRequest{TTL: time.Hour}); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("a worker made a token: %v", err)
	}
	made, err := n00.CreateToken(TokenRequest{TTL: time.Hour, Description: "for w02"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseToken(made.Token)
	if err != nil {
		t.Fatal(err)
	}
	// Through the worker: it learnt the token's record by gossip.
	waitFor(t, 10*time.Second, "w01 to know the new token", func() bool {
		_, ok := w01.state.Token(tok.ID())
		return ok
	})
	if _, err := tc.start("w02", []string{"w01"}, nil, tok, false); err != nil {
		t.Fatalf("join with a new token through a worker: %v", err)
	}
	tc.waitConverged(10*time.Second, 3)

	if err := n00.DeleteToken(made.Info.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "w01 to see the deletion", func() bool {
		r, _ := w01.state.Token(tok.ID())
		return r.Deleted
	})
	if _, err := tc.start("w03", []string{"w01"}, nil, tok, false); !errors.Is(err, gossip.ErrTokenRefused) {
		t.Fatalf("join with a deleted token: %v", err)
	}
	if err := w01.DeleteToken(made.Info.ID); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("a worker deleted a token: %v", err)
	}
	if err := n00.DeleteToken("0011223344556677"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("deleting an unknown token: %v", err)
	}

	short, err := n00.CreateToken(TokenRequest{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stok, _ := pki.ParseToken(short.Token)
	time.Sleep(time.Until(short.Info.Expires.Add(100 * time.Millisecond)))
	if _, err := tc.start("w04", []string{"n00"}, nil, stok, false); !errors.Is(err, gossip.ErrTokenRefused) {
		t.Fatalf("join with an expired token: %v", err)
	}
	if states := tokenStates(n00.Tokens()); states[made.Info.ID] != "deleted" || states[short.Info.ID] != "expired" {
		t.Errorf("token list: %v", states)
	}

	// w02 restarts without any token: it saved the cluster's gossip key.
	tc.kill("w02")
	if _, err := tc.start("w02", []string{"n00"}, nil, pki.Token{}, true); err != nil {
		t.Fatalf("restart of a node whose token was deleted: %v", err)
	}
	tc.waitConverged(10*time.Second, 3)
	var id datadir.Identity
	if err := tc.dir("w02").ReadJSON(datadir.NodeFile, &id); err != nil {
		t.Fatal(err)
	}
	if len(id.GossipKeys) != 1 || !bytes.Equal(id.GossipKeys[0], n00.g.Keys()[0]) {
		t.Error("the joiner did not keep the cluster's gossip key")
	}
	if _, err := os.Stat(tc.dir("w02").Path(datadir.TokenFile)); err == nil {
		t.Error("a joiner kept its join token")
	}
}

func tokenStates(infos []TokenInfo) map[string]string {
	out := map[string]string{}
	for _, ti := range infos {
		out[ti.ID] = ti.State
	}
	return out
}

// TestRotateGossipKey: every node moves to the new key and drops the old one
// while gossip keeps flowing; a joiner is handed the new key; a master whose
// peer is down stops before anything changes for it, unless forced.
func TestRotateGossipKey(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	n00 := tc.live()["n00"]
	w01 := tc.join("w01", "n00")
	tc.join("w02", "w01")
	tc.waitConverged(10*time.Second, 3)
	old := n00.g.Keys()[0]

	if _, err := w01.RotateGossipKey(context.Background(), false); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("a worker rotated the gossip key: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := n00.RotateGossipKey(ctx, false)
	if err != nil || rep.Nodes != 3 || !rep.Dropped {
		t.Fatalf("rotate: %+v %v", rep, err)
	}
	key := n00.g.Keys()
	if len(key) != 1 || bytes.Equal(key[0], old) {
		t.Fatalf("n00's keyring after rotation: %d keys, old one kept: %v", len(key), bytes.Equal(key[0], old))
	}
	for name, a := range tc.live() {
		if k := a.g.Keys(); len(k) != 1 || !bytes.Equal(k[0], key[0]) {
			t.Errorf("%s holds %d keys, not the new one alone", name, len(k))
		}
		var id datadir.Identity
		if err := tc.dir(name).ReadJSON(datadir.NodeFile, &id); err != nil || len(id.GossipKeys) != 1 || !bytes.Equal(id.GossipKeys[0], key[0]) {
			t.Errorf("%s did not save the new key (%v)", name, err)
		}
	}
	// Gossip still works: a new node joins through a worker and is admitted
	// with the new key.
	tc.join("w03", "w02")
	tc.waitConverged(10*time.Second, 4)
	if k := tc.live()["w03"].g.Keys(); !bytes.Equal(k[0], key[0]) {
		t.Error("a joiner after the rotation got another key")
	}

	// A node that is down: the rotation stops, nothing changes.
	tc.kill("w03")
	waitState(t, n00, "w03", gossip.StateDead)
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	rep, err = n00.RotateGossipKey(short, false)
	if err == nil || !strings.Contains(err.Error(), "w03") || len(rep.Missing) != 1 {
		t.Fatalf("rotation with a node down: %+v %v", rep, err)
	}
	waitFor(t, 5*time.Second, "the stopped rotation's key to be taken out", func() bool {
		for _, a := range tc.live() {
			if k := a.g.Keys(); len(k) != 1 || !bytes.Equal(k[0], key[0]) {
				return false
			}
		}
		return true
	})
	tc.waitConverged(10*time.Second, 4)
}

// TestWorkerTokenTakesNoSeat: with master seats free, a machine admitted
// with a worker token stays a worker (and gets no master keys); one with a
// master token made later takes the seat.
func TestWorkerTokenTakesNoSeat(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	n00 := tc.live()["n00"]
	w, err := tc.start("w01", []string{"n00"}, nil, tc.token, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if as, err := w.WaitAssigned(ctx); err != nil || as.Seat != -1 {
		t.Fatalf("worker token: seat %d (%v), want a worker", as.Seat, err)
	}
	made, err := n00.CreateToken(TokenRequest{TTL: time.Hour, Master: true})
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := pki.ParseToken(made.Token)
	m, err := tc.start("m01", []string{"w01"}, nil, mt, false)
	if err != nil {
		t.Fatal(err)
	}
	if as, err := m.WaitAssigned(ctx); err != nil || as.Seat != 1 {
		t.Fatalf("master token: seat %d (%v), want 1", as.Seat, err)
	}
	waitFor(t, 10*time.Second, "m01 to receive the master keys", m.HasSecrets)
	time.Sleep(time.Second)
	if w.HasSecrets() || tc.dir("w01").Exists("secrets/ca.key") {
		t.Error("the worker-token node holds master keys")
	}
}

// TestTokenUseLimit: a token made for one machine admits one; the next
// holder is turned away at admission with the reason, and the list shows
// the token used up.
func TestTokenUseLimit(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	n00 := tc.live()["n00"]
	made, err := n00.CreateToken(TokenRequest{TTL: time.Hour, Uses: 1})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := pki.ParseToken(made.Token)
	w01, err := tc.start("w01", []string{"n00"}, nil, tok, false)
	if err != nil {
		t.Fatalf("first machine: %v", err)
	}
	tc.waitConverged(10*time.Second, 2)
	if as, ok := w01.Assignment(); !ok || as.Token != tok.ID() {
		t.Fatalf("w01's decision does not count the token: %+v", as)
	}
	_, err = tc.start("w02", []string{"w01"}, nil, tok, false)
	if !errors.Is(err, gossip.ErrTokenRefused) || !strings.Contains(err.Error(), "as many as it may") {
		t.Fatalf("second machine with a token for one: %v", err)
	}
	for _, ti := range n00.Tokens() {
		if ti.ID == made.Info.ID && (ti.State != "used up" || ti.Used != 1 || ti.Uses != 1) {
			t.Errorf("token list: %+v", ti)
		}
	}
	if _, err := n00.CreateToken(TokenRequest{Uses: gossip.MaxTokenUses + 1}); err == nil {
		t.Error("a token for more machines than the limit")
	}
}
