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

// Masters renew in turns: each renewal of a master's certificates restarts
// its etcd and apiserver, and masters set up together would otherwise all
// come due within seconds of each other, losing etcd quorum for that moment.
// Time, counted from the Unix epoch (the same on every node), is cut into
// windows; window i belongs to master seat i mod seats, and a master starts a
// renewal only in the first half of one of its own windows, so that the
// restarts (seconds) end before the next master's window begins (minutes).

// maxRenewWindow bounds a window: with five masters, a renewal waits at most
// five windows past its due time.
const maxRenewWindow = 15 * time.Minute

// RenewWindow is the window length for leaves that live life: a fortieth of
// it (so that five seats' turns take at most an eighth of the lifetime, well
// inside the third left at renewal), at most 15 minutes.
func RenewWindow(life time.Duration) time.Duration {
	return min(life/40, maxRenewWindow)
}

// Staggered returns the first moment at or after at when master seat seat
// (of seats) may start a renewal, with windows of length w. A worker (seat
// < 0), a single master and w <= 0 renew at at: a worker's restart concerns
// its own node alone.
func Staggered(at time.Time, seat, seats int, w time.Duration) time.Time {
	if seat < 0 || seats <= 1 || w <= 0 || seat >= seats {
		return at
	}
	n := at.UnixNano() / int64(w)
	if int(n%int64(seats)) == seat && at.UnixNano()-n*int64(w) < int64(w/2) {
		return at
	}
	k := (int64(seat) - n%int64(seats) + int64(seats)) % int64(seats)
	if k == 0 {
		k = int64(seats)
	}
	return time.Unix(0, (n+k)*int64(w)).In(at.Location())
}
