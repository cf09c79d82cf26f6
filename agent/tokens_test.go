package agent

import (
	"bytes"
	"errors"
	"os"
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

	if _, err := w01.CreateToken(time.Hour, ""); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("a worker made a token: %v", err)
	}
	made, err := n00.CreateToken(time.Hour, "for w02")
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

	short, err := n00.CreateToken(time.Second, "")
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
