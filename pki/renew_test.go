package pki

import (
	"testing"
	"time"
)

func TestRenewAtAndDue(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ca, err := NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		validity, backdate time.Duration
	}{{time.Minute, 6 * time.Second}, {LeafValidity, 5 * time.Minute}} {
		c, err := Issue(ca, CertSpec{CommonName: "x", Client: true, Validity: tt.validity}, now)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := ParseCert(c.CertPEM)
		if got := now.Sub(cert.NotBefore); got != tt.backdate {
			t.Errorf("%s certificate back-dated %s, want %s", tt.validity, got, tt.backdate)
		}
		at := RenewAt(cert)
		if want := cert.NotAfter.Add(-(tt.validity + tt.backdate) / 3); !at.Equal(want) {
			t.Errorf("%s certificate renews at %s, want %s", tt.validity, at, want)
		}
		if Due(ca, c.CertPEM, at.Add(-time.Second)) || !Due(ca, c.CertPEM, at) {
			t.Errorf("%s certificate: due before %s or not at it", tt.validity, at)
		}
	}
	// Capped by the CA's own expiry, a renewal could not help: not due.
	late := ca.Cert.NotAfter.Add(-time.Hour)
	c, err := Issue(ca, CertSpec{CommonName: "x", Client: true}, late)
	if err != nil {
		t.Fatal(err)
	}
	if Due(ca, c.CertPEM, late.Add(59*time.Minute)) {
		t.Error("a certificate expiring with its CA is due: it would be renewed in a loop")
	}
	if !Due(ca, []byte("garbage"), now) {
		t.Error("an unreadable certificate is not due")
	}
}
