package gossip

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/pki"
)

// tokenRecord is a signed record admitting tok.
func (f fixture) tokenRecord(tok pki.Token, expires int64, deleted bool) TokenRecord {
	r := TokenRecord{ID: tok.ID(), Verifier: Key(tok.Verifier()), Expires: expires, Deleted: deleted,
		Gen: uint64(time.Now().UnixNano()), By: "m0"}
	r.Sign(f.dec)
	return r
}

// admitNode is a gossip endpoint of the fixture's cluster on loopback with
// the given gossip key.
func admitNode(t *testing.T, f fixture, key []byte) *Node {
	t.Helper()
	n, err := New(Config{Name: "m0", Bind: netip.MustParseAddrPort("127.0.0.1:0"), Keys: [][]byte{key},
		SignKey: nodeKey(t), Timing: Fast}, f.state(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ml.Shutdown() })
	return n
}

func TestAdmission(t *testing.T) {
	f := newFixture(t)
	key := make([]byte, 32)
	key[0] = 7 // startNode's key for 7
	n := admitNode(t, f, key)
	peer := n.LocalAddr().String()
	valid, _ := pki.NewToken(f.ca)
	deleted, _ := pki.NewToken(f.ca)
	expired, _ := pki.NewToken(f.ca)
	unknown, _ := pki.NewToken(f.ca)
	for _, r := range []TokenRecord{f.tokenRecord(valid, 0, false), f.tokenRecord(deleted, 0, true),
		f.tokenRecord(expired, time.Now().Add(-time.Minute).Unix(), false)} {
		if _, err := n.state.MergeToken(r); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	adm, err := Admit(ctx, peer, valid)
	if err != nil {
		t.Fatalf("valid token: %v", err)
	}
	if len(adm.Keys) != 1 || !bytes.Equal(adm.Keys[0], key) || adm.Cluster.Cluster.Name != "test" {
		t.Errorf("admission gave %d keys, cluster %q", len(adm.Keys), adm.Cluster.Cluster.Name)
	}
	for name, tok := range map[string]pki.Token{"deleted": deleted, "expired": expired, "unknown": unknown} {
		if _, err := Admit(ctx, peer, tok); !errors.Is(err, ErrTokenRefused) {
			t.Errorf("%s token: %v, want ErrTokenRefused", name, err)
		}
	}
	// The right ID with another secret: the proof fails.
	forged := valid
	forged.Secret[0] ^= 1
	if _, err := Admit(ctx, peer, forged); !errors.Is(err, ErrTokenRefused) {
		t.Errorf("right ID, wrong secret: %v", err)
	}
	// A token of another cluster's CA with this cluster's secret: the joiner
	// refuses the identity it is sent.
	other := newFixture(t)
	wrongPin, _ := pki.NewToken(other.ca)
	wrongPin.Secret = valid.Secret
	if _, err := Admit(ctx, peer, wrongPin); err == nil || !strings.Contains(err.Error(), "does not match the token's pin") {
		t.Errorf("another cluster's pin: %v", err)
	}
	if got := n.Rejected()["(joiner)"]; got != 4 {
		t.Errorf("refused joiners counted %d, want 4", got)
	}
	// memberlist still works on the same port.
	m := startNode(t, "m1", 7)
	if err := m.Join(peer); err != nil {
		t.Fatalf("memberlist join on the admission port: %v", err)
	}
}

// TestAdmissionAnswerIsSealed: a peer that answers without this token's
// verifier (a man in the middle holding another token, or none) cannot hand
// the joiner keys.
func TestAdmissionAnswerIsSealed(t *testing.T) {
	f := newFixture(t)
	tok, _ := pki.NewToken(f.ca)
	other, _ := pki.NewToken(f.ca) // what the attacker holds
	c1, c2 := net.Pipe()
	defer c1.Close()
	go func() {
		defer c2.Close()
		req := make([]byte, admitReqSize)
		if _, err := io.ReadFull(c2, req); err != nil {
			return
		}
		ans, err := sealAdmission(req, Key(other.Verifier()), Admission{Cluster: f.info, Keys: [][]byte{bytes.Repeat([]byte{9}, 32)}})
		if err == nil {
			c2.Write(ans)
		}
	}()
	if _, err := admitOver(c1, "mitm", tok); err == nil || !strings.Contains(err.Error(), "not sealed for this token") {
		t.Fatalf("answer sealed under another token: %v", err)
	}
}

func TestTokenRecordValidation(t *testing.T) {
	f := newFixture(t)
	tok, _ := pki.NewToken(f.ca)
	s := f.state(t)
	good := f.tokenRecord(tok, time.Now().Add(time.Hour).Unix(), false)
	good.Uses = 3
	good.Sign(f.dec)
	msg := EncodeToken(good)
	for i := 1; i < len(msg); i++ {
		if _, err := decodeToken(msg[1:i]); err == nil {
			t.Fatalf("truncated token record (%d of %d bytes) decoded", i, len(msg))
		}
	}
	if _, err := decodeToken(append(bytes.Clone(msg[1:]), 0)); err == nil {
		t.Fatal("padded token record decoded")
	}
	bad := map[string]TokenRecord{}
	forged := good
	forged.Expires = 0
	bad["re-signed by nobody"] = forged
	future := good
	future.Gen = uint64(time.Now().Add(2 * time.Hour).UnixNano())
	future.Sign(f.dec)
	bad["generation from the future"] = future
	name := good
	name.By = "--all"
	name.Sign(f.dec)
	bad["option as author"] = name
	unbounded := good
	unbounded.Uses = MaxTokenUses + 1
	unbounded.Sign(f.dec)
	bad["use limit out of range"] = unbounded
	for what, r := range bad {
		if ch, _, _, err := s.MergeMessage(EncodeToken(r)); err == nil || ch {
			t.Errorf("%s: accepted", what)
		}
	}
	stale := f.tokenRecord(tok, time.Now().Add(-2*time.Hour).Unix(), false)
	if _, err := s.MergeToken(stale); !errors.Is(err, ErrStale) {
		t.Errorf("token expired two hours ago: %v, want ErrStale", err)
	}
	if ch, err := s.MergeToken(good); !ch || err != nil {
		t.Fatalf("valid record: %v %v", ch, err)
	}
	if r, _ := s.Token(tok.ID()); r.Uses != 3 {
		t.Errorf("use limit %d after the merge, want 3", r.Uses)
	}
	other, _ := pki.NewToken(f.ca)
	swapped := good
	swapped.Verifier, swapped.Gen = Key(other.Verifier()), good.Gen+1
	swapped.Sign(f.dec)
	if _, err := s.MergeToken(swapped); err == nil {
		t.Error("a token's verifier was replaced")
	}
	del := good
	del.Deleted, del.Gen = true, good.Gen+1
	del.Sign(f.dec)
	if ch, err := s.MergeToken(del); !ch || err != nil {
		t.Fatalf("deletion: %v %v", ch, err)
	}
	if ch, _ := s.MergeToken(good); ch {
		t.Error("an older record undid a deletion")
	}
	if r, _ := s.Token(tok.ID()); r.ValidAt(time.Now()) {
		t.Error("a deleted token is valid")
	}
}

// TestAdmissionUnderLoad: more joiners from one address than a member serves
// at once are asked to come back, and all get in.
func TestAdmissionUnderLoad(t *testing.T) {
	f := newFixture(t)
	n := admitNode(t, f, bytes.Repeat([]byte{3}, 32))
	tok, _ := pki.NewToken(f.ca)
	if _, err := n.state.MergeToken(f.tokenRecord(tok, 0, false)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3*maxAdmittingFrom)
	for range cap(errs) {
		go func() {
			_, err := Admit(context.Background(), n.LocalAddr().String(), tok)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
