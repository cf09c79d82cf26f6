package gossip

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func sampleImages(name string, gen uint64, blobs int) Images {
	var ds [][32]byte
	for i := range blobs {
		ds = append(ds, sha256.Sum256(fmt.Appendf(nil, "blob %d", i)))
	}
	return Images{Name: name, Gen: gen, Blobs: NewBloom(ds), Refs: []ImageRef{
		{Ref: "docker.io/library/app:v1", Digest: sha256.Sum256([]byte("m1")), Imported: int64(gen) - 5},
		{Ref: "example.com/team/tool:2.0", Digest: sha256.Sum256([]byte("m2")), Imported: int64(gen) - 9},
	}}
}

func TestImagesRoundTripsAndRefusesTruncation(t *testing.T) {
	m := sampleImages("n1", uint64(time.Now().UnixNano()), 40)
	m.Sign(nodeKey(t))
	msg := EncodeImages(m)
	got, err := decodeImages(msg[1:])
	if err != nil || got.Name != m.Name || got.Gen != m.Gen || got.Sig != m.Sig || len(got.Refs) != 2 || got.Refs[1] != m.Refs[1] || string(got.Blobs) != string(m.Blobs) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	refusesTruncation(t, msg[1:], func(b []byte) error { _, err := decodeImages(b); return err })
	t.Logf("an announcement of 2 images and 40 blobs: %d bytes", len(msg))
	if len(msg) > 1000 {
		t.Errorf("announcement is %d bytes", len(msg))
	}
}

// The filter never misses a digest it holds, and its false positives stay
// near the rate its size promises.
func TestBloom(t *testing.T) {
	var held [][32]byte
	for i := range 200 {
		held = append(held, sha256.Sum256(fmt.Appendf(nil, "held %d", i)))
	}
	f := NewBloom(held)
	for _, d := range held {
		if !BloomHas(f, d) {
			t.Fatalf("held digest %x missing", d)
		}
	}
	fp := 0
	for i := range 100000 {
		if BloomHas(f, sha256.Sum256(fmt.Appendf(nil, "other %d", i))) {
			fp++
		}
	}
	t.Logf("false positives at 200 blobs: %d in 100000", fp)
	if fp > 300 {
		t.Errorf("%d false positives in 100000 (expected about 50)", fp)
	}
	if BloomHas(nil, held[0]) || BloomHas(f[:10], held[0]) {
		t.Error("an empty or short filter holds something")
	}
}

func TestImagesOnlyFromItsOwnNode(t *testing.T) {
	f := newFixture(t)
	s := f.state(t)
	k1, k2 := nodeKey(t), nodeKey(t)
	s.MergeAssignment(f.decision("n1", k1, "10.10.1.0/24", 0, 1))
	s.MergeAssignment(f.decision("n2", k2, "10.10.2.0/24", -1, 2))
	now := uint64(time.Now().UnixNano())

	own := sampleImages("n1", now, 3)
	own.Sign(k1)
	if ch, err := s.MergeImages(own); !ch || err != nil {
		t.Fatalf("own images: %v %v", ch, err)
	}
	// n2 announces for n1 (to be asked for n1's images, or to move a tag):
	// refused.
	forged := sampleImages("n1", now+1, 3)
	forged.Refs[0].Digest = sha256.Sum256([]byte("poison"))
	forged.Sign(k2)
	if ch, err := s.MergeImages(forged); ch || !errors.Is(err, ErrBadSig) {
		t.Errorf("images signed by another node: %v %v", ch, err)
	}
	if ch, _, author, err := s.MergeMessage(EncodeImages(forged)); ch || author != "n1" || !errors.Is(err, ErrBadSig) {
		t.Errorf("forged message: %v %s %v", ch, author, err)
	}
	// A node with no decision cannot announce.
	k3 := nodeKey(t)
	stranger := sampleImages("n3", now, 1)
	stranger.Sign(k3)
	if ch, err := s.MergeImages(stranger); ch || !errors.Is(err, ErrUnbound) {
		t.Errorf("unbound: %v %v", ch, err)
	}
	bad := map[string]func(*Images){
		"option name":    func(m *Images) { m.Name = "--all" },
		"future gen":     func(m *Images) { m.Gen = math.MaxUint64 },
		"empty ref":      func(m *Images) { m.Refs[0].Ref = "" },
		"control char":   func(m *Images) { m.Refs[0].Ref = "a\x1b[2Jb" },
		"long ref":       func(m *Images) { m.Refs[0].Ref = strings.Repeat("a", maxImageRef+1) },
		"twice":          func(m *Images) { m.Refs[1].Ref = m.Refs[0].Ref },
		"no import time": func(m *Images) { m.Refs[0].Imported = 0 },
		"future import":  func(m *Images) { m.Refs[0].Imported = math.MaxInt64 },
		"short filter":   func(m *Images) { m.Blobs = m.Blobs[:100] },
		"65 names": func(m *Images) {
			for i := range MaxImageRefs {
				m.Refs = append(m.Refs, ImageRef{Ref: fmt.Sprintf("x/y:%d", i), Imported: 1})
			}
		},
	}
	for name, mutate := range bad {
		m := sampleImages("n1", now+2, 3)
		mutate(&m)
		m.Sign(k1) // validly signed: values alone must refuse it
		if ch, err := s.MergeImages(m); ch || err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, _, _, err := s.MergeMessage(EncodeImages(m)); err == nil {
			t.Errorf("%s: accepted from the wire", name)
		}
	}
	old := sampleImages("n1", now-1, 0)
	old.Sign(k1)
	if ch, _ := s.MergeImages(old); ch {
		t.Error("an older announcement replaced a newer one")
	}
	if got := s.Snapshot().Images["n1"]; got.Sig != own.Sig || len(s.Snapshot().Images) != 1 {
		t.Errorf("held %+v", s.Snapshot().Images)
	}
	// The name bound to a new key: the old key's announcement goes.
	s.MergeAssignment(f.decision("n1", k3, "10.10.1.0/24", 0, 5))
	if _, held := s.Snapshot().Images["n1"]; held {
		t.Error("the old key's announcement outlived its binding")
	}
}

func TestImagesTravelByDeltaSync(t *testing.T) {
	checkTravels(t, msgImages, func(s *State, k ed25519.PrivateKey) Sig {
		m := sampleImages("n1", uint64(time.Now().UnixNano()), 10)
		m.Sign(k)
		s.MergeImages(m)
		return m.Sig
	}, func(s *State) Sig { return s.Snapshot().Images["n1"].Sig })
}
