package pki

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCA(t *testing.T) {
	ca, err := NewCA("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Sub(ca.Cert.NotBefore) < CAValidity {
		t.Errorf("CA: isCA=%v validity %s", ca.Cert.IsCA, ca.Cert.NotAfter.Sub(ca.Cert.NotBefore))
	}
	if _, err := LoadCA(ca.CertPEM, ca.KeyPEM); err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("other", time.Now())
	if _, err := LoadCA(ca.CertPEM, other.KeyPEM); err == nil {
		t.Error("a CA with another CA's key was accepted")
	}
	if w, err := LoadCA(ca.CertPEM, nil); err != nil || w.Key != nil {
		t.Errorf("worker load: %v", err)
	}
}

func TestToken(t *testing.T) {
	ca, _ := NewCA("demo", time.Now())
	tok, err := NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || back != tok {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if err := tok.VerifyCA(ca.CertPEM); err != nil {
		t.Errorf("own CA refused: %v", err)
	}
	other, _ := NewCA("demo", time.Now())
	if err := tok.VerifyCA(other.CertPEM); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("another CA accepted: %v", err)
	}
	tok2, _ := NewToken(ca)
	if tok.ID() == tok2.ID() || tok.Verifier() == tok2.Verifier() {
		t.Error("two tokens share an ID or a verifier")
	}
	if id, v := tok.ID(), tok.Verifier(); bytes.Contains(v[:], tok.Secret[:]) || bytes.Contains(id[:], tok.Secret[:8]) {
		t.Error("ID or verifier reveals the secret")
	}
	s := tok.String()
	for _, bad := range []string{"", "abc", s[:len(s)-1], strings.Replace(s, "knode1", "knode2", 1), s[:len(s)-1] + "g", strings.Replace(s, ".", ":", 1)} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("malformed token %q accepted", bad)
		}
	}
}

func TestSealOpensOnlyForRecipient(t *testing.T) {
	k1, _ := NewNodeKey()
	k2, _ := NewNodeKey()
	box, err := Seal(k1.PublicKey().Bytes(), []byte("ca key"), []byte("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(box, []byte("ca key")) {
		t.Error("plaintext visible in the sealed box")
	}
	if pt, err := Open(k1, box, []byte("n1")); err != nil || string(pt) != "ca key" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := Open(k2, box, []byte("n1")); err == nil {
		t.Error("another node opened the box")
	}
	if _, err := Open(k1, box, []byte("n2")); err == nil {
		t.Error("box opened with another recipient name")
	}
}
