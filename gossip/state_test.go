package gossip

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/pki"
)

// fixture is a cluster's trust material: its CA, signed identity and
// decision key.
type fixture struct {
	info *ClusterInfo
	pin  [32]byte
	dec  ed25519.PrivateKey
	ca   *pki.CA
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub, dec, _ := ed25519.GenerateKey(rand.Reader)
	info := &ClusterInfo{Cluster: config.Cluster{Name: "test", PodCIDR: netip.MustParsePrefix("10.10.0.0/16"),
		ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), NodeCIDRMask: 24, Masters: 3, Network: "auto"},
		CACert: ca.CertPEM, Created: 1, DecisionKey: Key(pub)}
	sum := sha256.Sum256(info.SignedBytes())
	if info.Sig, err = ca.Key.Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	return fixture{info: info, pin: sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo), dec: dec, ca: ca}
}

func (f fixture) state(t testing.TB) *State {
	t.Helper()
	s := NewState(f.pin)
	if _, err := s.MergeCluster(f.info); err != nil {
		t.Fatal(err)
	}
	return s
}

func nodeKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubOf(k ed25519.PrivateKey) Key { return Key(k.Public().(ed25519.PublicKey)) }

// decision is a valid, signed decision for name bound to key.
func (f fixture) decision(name string, key ed25519.PrivateKey, cidr string, seat int, version uint64) Assignment {
	a := Assignment{Node: name, SignKey: pubOf(key), BoxKey: pubOf(key), Addr: netip.MustParseAddr("192.0.2.7"), Port: 7946,
		PodCIDR: netip.MustParsePrefix(cidr), Seat: seat, Version: version, By: "m0"}
	a.Sign(f.dec)
	return a
}

func TestCodecRoundTripsAndRefusesTruncation(t *testing.T) {
	f := newFixture(t)
	k := nodeKey(t)
	a := f.decision("n1", k, "10.10.1.0/24", 1, 7)
	a.Token = [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	a.Sign(f.dec)
	n := NodeInfo{Name: "n1", HasSecrets: true, Gen: 42, EtcdRestore: uint64(time.Now().UnixNano())}
	n.Sign(k)
	l := Letter{Kind: LetterCSR, From: "n1", To: "m0", Time: 5, Body: []byte("hello")}
	l.Sign(k)
	c := Claim{Name: "n1", SignKey: pubOf(k), Addr: netip.MustParseAddr("192.0.2.1"), Port: 1, WantCIDR: netip.MustParsePrefix("10.10.1.0/24"), Time: 9}
	c.Sign(k)
	for _, tc := range []struct {
		name   string
		msg    []byte
		decode func([]byte) (any, error)
		want   any
	}{
		{"decision", EncodeAssignment(a), func(b []byte) (any, error) { return decodeAssignment(b) }, a},
		{"node", EncodeNode(n), func(b []byte) (any, error) { return decodeNode(b) }, n},
		{"letter", EncodeLetter(l), func(b []byte) (any, error) { return decodeLetter(b) }, l},
		{"claim", append([]byte{0}, EncodeClaim(c)...), func(b []byte) (any, error) { return DecodeClaim(b) }, c},
		{"cluster", append([]byte{0}, f.info.encode()...), func(b []byte) (any, error) {
			v, err := decodeCluster(b)
			if err != nil {
				return nil, err
			}
			return *v, nil
		}, *f.info},
	} {
		got, err := tc.decode(tc.msg[1:])
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if gs, ws := strings.ReplaceAll(sprint(got), " ", ""), strings.ReplaceAll(sprint(tc.want), " ", ""); gs != ws {
			t.Errorf("%s: round trip\n got %s\nwant %s", tc.name, gs, ws)
		}
		for i := 1; i < len(tc.msg); i++ {
			if _, err := tc.decode(tc.msg[1:i]); err == nil {
				t.Errorf("%s truncated to %d of %d bytes decoded", tc.name, i, len(tc.msg))
			}
		}
		if _, err := tc.decode(append(tc.msg[1:len(tc.msg):len(tc.msg)], 0)); err == nil {
			t.Errorf("%s with a trailing byte decoded", tc.name)
		}
	}
	if len(EncodeAssignment(a)) > 260 || len(EncodeNode(n)) > 99 {
		t.Errorf("records grew: decision %d B, node %d B", len(EncodeAssignment(a)), len(EncodeNode(n)))
	}
}

func TestClusterIdentityMustMatchThePin(t *testing.T) {
	f, other := newFixture(t), newFixture(t)
	if _, err := NewState(f.pin).MergeCluster(other.info); err == nil || !strings.Contains(err.Error(), "does not match the token's pin") {
		t.Errorf("another CA's identity: %v", err)
	}
	forged := *f.info
	forged.Cluster.Masters = 5 // changed after signing
	if _, err := NewState(f.pin).MergeCluster(&forged); !errors.Is(err, ErrBadSig) {
		t.Errorf("altered identity: %v", err)
	}
	s := f.state(t)
	if _, err := s.MergeCluster(&forged); err == nil {
		t.Error("a second, different identity was not reported")
	}
}

func TestDecisionsNeedTheDecisionKeyAndValidValues(t *testing.T) {
	f := newFixture(t)
	s := f.state(t)
	k := nodeKey(t)
	good := f.decision("n1", k, "10.10.1.0/24", 1, 3)
	if ch, err := s.MergeAssignment(good); !ch || err != nil {
		t.Fatalf("valid decision: %v %v", ch, err)
	}
	forged := good
	forged.Seat, forged.Version = 0, 1<<40
	forged.Sign(k) // a node's own key is no decision key
	bad := map[string]Assignment{"forged": forged}
	for name, mutate := range map[string]func(*Assignment){
		"option name":     func(a *Assignment) { a.Node = "--all" },
		"long name":       func(a *Assignment) { a.Node = strings.Repeat("a", 64) },
		"outside range":   func(a *Assignment) { a.PodCIDR = netip.MustParsePrefix("10.11.0.0/24") },
		"wrong size":      func(a *Assignment) { a.PodCIDR = netip.MustParsePrefix("10.10.0.0/23") },
		"seat too high":   func(a *Assignment) { a.Seat = 3 },
		"clock jump":      func(a *Assignment) { a.Version = math.MaxUint64 },
		"no address":      func(a *Assignment) { a.Addr = netip.Addr{} },
		"IPv6 address":    func(a *Assignment) { a.Addr = netip.MustParseAddr("2001:db8::1") },
		"released + seat": func(a *Assignment) { a.Released = true },
	} {
		a := f.decision("n2", k, "10.10.2.0/24", 2, 4)
		mutate(&a)
		a.Sign(f.dec) // validly signed: values alone must refuse it
		bad[name] = a
	}
	for name, a := range bad {
		if ch, err := s.MergeAssignment(a); ch || err == nil {
			t.Errorf("%s: accepted (%v %v)", name, ch, err)
		}
	}
	if got := s.Snapshot().Assignments; len(got) != 1 || got["n1"].Sig != good.Sig {
		t.Errorf("state changed by refused decisions: %v", got)
	}
	if s.Snapshot().Clock != 3 {
		t.Errorf("clock %d, want 3", s.Snapshot().Clock)
	}
	// A replayed older decision changes nothing.
	newer := f.decision("n1", k, "10.10.1.0/24", 1, 9)
	s.MergeAssignment(newer)
	if ch, _ := s.MergeAssignment(good); ch || s.Snapshot().Assignments["n1"].Version != 9 {
		t.Error("a replayed older decision replaced a newer one")
	}
}

func TestNodeRecordsNeedTheBoundKey(t *testing.T) {
	f := newFixture(t)
	s := f.state(t)
	k1, k2 := nodeKey(t), nodeKey(t)
	own := NodeInfo{Name: "n1", HasSecrets: true, Gen: 10}
	own.Sign(k1)
	// Before its decision arrives the record waits; it counts once it does.
	if _, err := s.MergeNode(own); !errors.Is(err, ErrUnbound) {
		t.Fatalf("unbound record: %v", err)
	}
	s.MergeAssignment(f.decision("n1", k1, "10.10.1.0/24", 0, 1))
	if got := s.Snapshot().Nodes["n1"]; got.Gen != 10 {
		t.Fatalf("pending record not merged with its decision: %v", got)
	}
	spoof := NodeInfo{Name: "n1", Removed: true, Gen: 11}
	spoof.Sign(k2) // another node's key
	if ch, err := s.MergeNode(spoof); ch || !errors.Is(err, ErrBadSig) {
		t.Errorf("record signed by another key: %v %v", ch, err)
	}
	frozen := NodeInfo{Name: "n1", Gen: math.MaxUint64}
	frozen.Sign(k1)
	if ch, err := s.MergeNode(frozen); ch || err == nil {
		t.Errorf("generation far in the future: %v %v", ch, err)
	}
	// A restore announced for the far future would make every later real
	// restore look older: refused like a frozen generation.
	future := NodeInfo{Name: "n1", Gen: 12, EtcdRestore: math.MaxUint64}
	future.Sign(k1)
	if ch, err := s.MergeNode(future); ch || err == nil {
		t.Errorf("etcd restore far in the future: %v %v", ch, err)
	}
	// The name given to a new key (after a release): the old key's record goes.
	s.MergeAssignment(f.decision("n1", k2, "10.10.1.0/24", 0, 5))
	if _, held := s.Snapshot().Nodes["n1"]; held {
		t.Error("the old key's record outlived its binding")
	}
}

func TestDigestAndDeltaSync(t *testing.T) {
	f := newFixture(t)
	a, b := f.state(t), f.state(t)
	var msgs [][]byte
	for i, name := range []string{"n1", "n2", "n3"} {
		k := nodeKey(t)
		d := f.decision(name, k, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, byte(i), 0}), 24).String(), -1, uint64(i+1))
		n := NodeInfo{Name: name, Gen: 1}
		n.Sign(k)
		msgs = append(msgs, EncodeAssignment(d), EncodeNode(n))
	}
	a.MergeRecords(msgs)
	b.MergeRecords([][]byte{msgs[4], msgs[5], msgs[0]}) // other order, fewer
	if da, _ := a.Digest(); func() bool { db, _ := b.Digest(); return da == db }() {
		t.Fatal("different states, same digest")
	}
	recs, newer, err := a.Delta(b.Vector())
	if err != nil || newer || len(recs) != 3 {
		t.Fatalf("delta for b: %d records, newer=%v, %v", len(recs), newer, err)
	}
	if _, newer, _ := b.Delta(a.Vector()); !newer {
		t.Error("b does not see that a holds more")
	}
	b.MergeRecords(recs)
	da, na := a.Digest()
	db, nb := b.Digest()
	if da != db || na != nb || na != 6 {
		t.Errorf("after the delta: %x/%d vs %x/%d", da, na, db, nb)
	}
	// A saved state loads back into an equal one.
	c := NewState(f.pin)
	if _, rej, err := c.MergeFull(a.EncodeFull()); err != nil || len(rej) > 0 {
		t.Fatal(err, rej)
	}
	if dc, _ := c.Digest(); dc != da {
		t.Error("full state round trip changed the digest")
	}
}

// Two allocators that could not hear each other (a partition's two sides)
// decided for one node at the same Lamport version: a delta sync must still
// bring both holders to the newer decision, or their digests differ forever.
func TestDeltaSyncResolvesDecisionsOfEqualVersion(t *testing.T) {
	f := newFixture(t)
	a, b := f.state(t), f.state(t)
	k := nodeKey(t)
	da := f.decision("n1", k, "10.10.1.0/24", -1, 5)
	db := da
	db.PodCIDR, db.By = netip.MustParsePrefix("10.10.2.0/24"), "m1"
	db.Sign(f.dec)
	a.MergeAssignment(da)
	b.MergeAssignment(db)
	toB, newerB, err := a.Delta(b.Vector())
	if err != nil || len(toB) != 1 || !newerB {
		t.Fatalf("a's delta for b: %d records, b newer=%v, %v", len(toB), newerB, err)
	}
	toA, _, err := b.Delta(a.Vector())
	if err != nil || len(toA) != 1 {
		t.Fatalf("b's delta for a: %d records, %v", len(toA), err)
	}
	a.MergeRecords(toA)
	b.MergeRecords(toB)
	dgA, _ := a.Digest()
	dgB, _ := b.Digest()
	if dgA != dgB || a.Snapshot().Assignments["n1"].By != "m1" {
		t.Errorf("after the exchange: digests %x and %x, a holds the decision by %s, want m1's (the newer)", dgA, dgB, a.Snapshot().Assignments["n1"].By)
	}
	if recs, newer, _ := a.Delta(b.Vector()); len(recs) != 0 || newer {
		t.Errorf("equal states still differ in their vectors: %d records, newer=%v", len(recs), newer)
	}
}

func FuzzMergeMessage(f *testing.F) {
	fx := newFixture(f)
	k := nodeKey(f)
	f.Add(EncodeAssignment(fx.decision("n1", k, "10.10.1.0/24", 1, 3)))
	n := NodeInfo{Name: "n1", Gen: 1}
	n.Sign(k)
	f.Add(EncodeNode(n))
	h := sampleHealth("n1", 1)
	h.Sign(k)
	f.Add(EncodeHealth(h))
	f.Add(EncodeLetter(Letter{Kind: LetterSyncReq, From: "a", To: "b", Body: []byte{1, 2}}))
	f.Add(fx.state(f).EncodeFull())
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fx.state(t)
		s.MergeMessage(b)
		s.MergeFull(b)
		if len(b) > 0 {
			decodeLetter(b[1:])
			DecodeRecords(b[1:])
			decodeVector(b)
		}
	})
}

func sprint(v any) string { return fmt.Sprintf("%+v", v) }
