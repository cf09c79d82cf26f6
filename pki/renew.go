package pki

import (
	"crypto/x509"
	"time"
)

// RenewAt is when a leaf certificate is due for renewal: once a third of its
// lifetime is left (kubelet client rotation uses a comparable 70-90% point).
func RenewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-life / 3)
}

// Due reports whether cred's certificate should be renewed at now: it is
// unreadable, or its renewal time has come. A certificate whose expiry is the
// CA's own is not due, since a new one could not outlive it either.
func Due(ca *CA, certPEM []byte, now time.Time) bool {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return true
	}
	if ca != nil && ca.Cert != nil && !cert.NotAfter.Before(ca.Cert.NotAfter) {
		return false
	}
	return !now.Before(RenewAt(cert))
}
