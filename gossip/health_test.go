package gossip

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func sampleHealth(name string, gen uint64) Health {
	return Health{Name: name, Gen: gen, Checks: []Check{
		{What: CompContainerd, OK: true}, {What: CompKubelet, OK: false, Detail: "kubelet.service inactive (dead)"},
		{What: CompKubeProxy, OK: true}, {What: CompNodeReady, OK: true},
		{What: CompEtcd, OK: true}, {What: CompAPIServer, OK: true}, {What: CompControllerManager, OK: true}, {What: CompScheduler, OK: true},
	}, KubeletVersion: "v1.36.3", RuntimeVersion: "containerd://v2.4.2", CertExpiry: 1_900_000_000, CertName: "apiserver"}
}

func TestHealthRoundTripsAndRefusesTruncation(t *testing.T) {
	k := nodeKey(t)
	h := sampleHealth("m0", uint64(time.Now().UnixNano()))
	h.Sign(k)
	msg := EncodeHealth(h)
	got, err := decodeHealth(msg[1:])
	if err != nil {
		t.Fatal(err)
	}
	if sprint(got) != sprint(h) {
		t.Errorf("round trip\n got %s\nwant %s", sprint(got), sprint(h))
	}
	refusesTruncation(t, msg[1:], func(b []byte) error { _, err := decodeHealth(b); return err })
	// A master's full summary with a failure detail stays small.
	t.Logf("a master's health record with one failure: %d bytes", len(msg))
	if len(msg) > 200 {
		t.Errorf("health record is %d bytes", len(msg))
	}
	// JSON names components.
	js, _ := json.Marshal(h.Checks[1])
	if string(js) != `{"what":"kubelet","ok":false,"detail":"kubelet.service inactive (dead)"}` {
		t.Errorf("JSON: %s", js)
	}
	var back Check
	if err := json.Unmarshal(js, &back); err != nil || back != h.Checks[1] {
		t.Errorf("JSON back: %+v %v", back, err)
	}
}

func TestHealthOnlyFromItsOwnNode(t *testing.T) {
	f := newFixture(t)
	s := f.state(t)
	k1, k2 := nodeKey(t), nodeKey(t)
	s.MergeAssignment(f.decision("n1", k1, "10.10.1.0/24", 0, 1))
	s.MergeAssignment(f.decision("n2", k2, "10.10.2.0/24", -1, 2))
	now := uint64(time.Now().UnixNano())

	own := sampleHealth("n1", now)
	own.Sign(k1)
	if ch, err := s.MergeHealth(own); !ch || err != nil {
		t.Fatalf("own health: %v %v", ch, err)
	}
	// n2 speaks for n1: refused, whatever it says.
	forged := sampleHealth("n1", now+1)
	forged.Checks = []Check{{What: CompKubelet, OK: true}}
	forged.Sign(k2)
	if ch, err := s.MergeHealth(forged); ch || !errors.Is(err, ErrBadSig) {
		t.Errorf("health signed by another node: %v %v", ch, err)
	}
	// Through the wire path too, and counted against the name it claimed.
	if ch, _, author, err := s.MergeMessage(EncodeHealth(forged)); ch || author != "n1" || !errors.Is(err, ErrBadSig) {
		t.Errorf("forged message: %v %s %v", ch, author, err)
	}
	// A node with no decision cannot publish.
	k3 := nodeKey(t)
	stranger := sampleHealth("n3", now)
	stranger.Sign(k3)
	if ch, err := s.MergeHealth(stranger); ch || !errors.Is(err, ErrUnbound) {
		t.Errorf("unbound: %v %v", ch, err)
	}
	bad := map[string]func(*Health){
		"option name":   func(h *Health) { h.Name = "--all" },
		"future gen":    func(h *Health) { h.Gen = math.MaxUint64 },
		"no component":  func(h *Health) { h.Checks[0].What = 0 },
		"component 64":  func(h *Health) { h.Checks[0].What = 64 },
		"twice":         func(h *Health) { h.Checks[1].What = h.Checks[0].What },
		"long detail":   func(h *Health) { h.Checks[1].Detail = strings.Repeat("x", maxDetail+1) },
		"control char":  func(h *Health) { h.Checks[1].Detail = "a\x1b[2Jb" },
		"long version":  func(h *Health) { h.KubeletVersion = strings.Repeat("1", maxHealthShort+1) },
		"negative cert": func(h *Health) { h.CertExpiry = -1 },
		"17 checks": func(h *Health) {
			for i := range 9 {
				h.Checks = append(h.Checks, Check{What: Component(20 + i), OK: true})
			}
		},
	}
	for name, mutate := range bad {
		h := sampleHealth("n1", now+2)
		mutate(&h)
		h.Sign(k1) // validly signed: values alone must refuse it
		if ch, err := s.MergeHealth(h); ch || err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, _, _, err := s.MergeMessage(EncodeHealth(h)); err == nil {
			t.Errorf("%s: accepted from the wire", name)
		}
	}
	// Older or equal generations change nothing; newer ones replace.
	old := sampleHealth("n1", now-1)
	old.Checks = nil
	old.Sign(k1)
	if ch, _ := s.MergeHealth(old); ch {
		t.Error("an older summary replaced a newer one")
	}
	newer := sampleHealth("n1", now+3)
	newer.Checks = []Check{{What: CompKubelet, OK: true}}
	newer.Sign(k1)
	if ch, err := s.MergeHealth(newer); !ch || err != nil {
		t.Fatalf("newer summary: %v %v", ch, err)
	}
	if got := s.Snapshot().Health["n1"]; !got.Healthy() || got.Gen != now+3 {
		t.Errorf("held %+v", got)
	}
	if len(s.Snapshot().Health) != 1 {
		t.Errorf("refused summaries were stored: %v", s.Snapshot().Health)
	}
	// The name bound to a new key: the old key's summary goes.
	dg, _ := s.Digest()
	s.MergeAssignment(f.decision("n1", k3, "10.10.1.0/24", 0, 5))
	if _, held := s.Snapshot().Health["n1"]; held {
		t.Error("the old key's health outlived its binding")
	}
	if after, _ := s.Digest(); after == dg {
		t.Error("digest unchanged")
	}
}

func TestHealthTravelsByDeltaSync(t *testing.T) {
	checkTravels(t, msgHealth, func(s *State, k ed25519.PrivateKey) Sig {
		h := sampleHealth("n1", uint64(time.Now().UnixNano()))
		h.Sign(k)
		s.MergeHealth(h)
		return h.Sig
	}, func(s *State) Sig { return s.Snapshot().Health["n1"].Sig })
}

// checkTravels puts one record of node n1 (of message type msg) into a state,
// and checks that a delta sync and a full state carry it to others.
func checkTravels(t *testing.T, msg byte, put func(*State, ed25519.PrivateKey) Sig, get func(*State) Sig) {
	t.Helper()
	f := newFixture(t)
	a, b := f.state(t), f.state(t)
	k := nodeKey(t)
	d := f.decision("n1", k, "10.10.1.0/24", -1, 1)
	a.MergeAssignment(d)
	b.MergeAssignment(d)
	sig := put(a, k)
	recs, newer, err := a.Delta(b.Vector())
	if err != nil || newer || len(recs) != 1 || recs[0][0] != msg {
		t.Fatalf("delta: %d records, newer=%v, %v", len(recs), newer, err)
	}
	if _, newer, _ := b.Delta(a.Vector()); !newer {
		t.Error("b does not see that a holds a newer record")
	}
	b.MergeRecords(recs)
	da, na := a.Digest()
	db, nb := b.Digest()
	if da != db || na != nb || na != 2 {
		t.Errorf("after the delta: %x/%d vs %x/%d", da, na, db, nb)
	}
	c := NewState(f.pin)
	if _, rej, err := c.MergeFull(a.EncodeFull()); err != nil || len(rej) > 0 {
		t.Fatal(err, rej)
	}
	if got := get(c); got != sig {
		t.Error("record lost in a full state")
	}
}

// refusesTruncation checks that decode refuses every truncation of a
// record's body and the body with a trailing byte.
func refusesTruncation(t *testing.T, body []byte, decode func([]byte) error) {
	t.Helper()
	for i := 0; i < len(body); i++ {
		if decode(body[:i]) == nil {
			t.Errorf("truncated to %d of %d bytes decoded", i, len(body))
		}
	}
	if decode(append(body[:len(body):len(body)], 0)) == nil {
		t.Error("a trailing byte decoded")
	}
}
