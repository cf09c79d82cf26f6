package agent

import (
	"context"
	"fmt"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// Certificate renewal runs in the host loop, the one owner of host changes:
// a timer fires when the soonest of this node's leaf certificates is due
// (hostprep.CertSchedule); masters then issue new ones locally, workers ask a
// master with letters exactly as at join (Credentials), and hostprep.Renew
// writes them and restarts only what reads them.

// Bounds of the wait between two looks at the schedule: a clock that jumps
// or a certificate replaced by hand is noticed within renewLookMax.
const (
	renewLookMin = time.Second
	renewLookMax = time.Hour
	// renewAsk bounds a worker's wait for a master to sign its renewals.
	renewAsk = 30 * time.Second
)

func (a *Agent) now() time.Time {
	if a.opts.Now != nil {
		return a.opts.Now()
	}
	return time.Now()
}

// renewWait is how long the host loop waits until it looks again at a
// schedule whose next renewal is at next.
func (a *Agent) renewWait(next time.Time) time.Duration {
	return min(max(next.Sub(a.now()), renewLookMin), renewLookMax)
}

// renewCerts renews this node's due certificates, if its host is configured,
// and returns when the next one is due.
func (a *Agent) renewCerts(ctx context.Context) (time.Time, error) {
	h := a.hostOpts()
	a.hostMu.Lock()
	defer a.hostMu.Unlock()
	a.mu.Lock()
	configured, restored := a.id.Host, a.restored
	a.mu.Unlock()
	later := a.now().Add(time.Minute)
	if h == nil || h.Host == nil || !configured || !restored {
		return later, nil // not ours yet: init or join, or the boot phases, first
	}
	spec, err := a.HostSpec(nil)
	if err != nil {
		return later, nil // no subnet yet
	}
	sched := hostprep.CertSchedule(&spec, h.Host.Files)
	if start := a.renewStart(sched); len(sched) == 0 || a.now().Before(start) {
		return start, nil
	}
	var creds map[string]*pki.Credential
	if !a.HasSecrets() {
		ask, cancel := context.WithTimeout(ctx, renewAsk)
		creds, err = a.Credentials(ask)
		cancel()
		if err != nil {
			return later, fmt.Errorf("renew the certificates of %s: %w", a.id.Name, err)
		}
	}
	if spec, err = a.HostSpec(creds); err != nil {
		return later, err
	}
	rn, err := hostprep.Renew(ctx, &spec, h.Host, h.Out, a.log)
	if err != nil {
		return later, err
	}
	a.log.Info("certificates renewed", "due", sched[0].Path, "files", rn.Renewed, "restarted", rn.Restarted)
	return a.renewStart(hostprep.CertSchedule(&spec, h.Host.Files)), nil
}

// renewStart is when this node starts the renewal of the soonest certificate
// of sched (now plus renewLookMax for none): when it is due, or, on a master,
// at its seat's next turn from then (pki.Staggered), so that masters never
// restart their control planes together. A renewal that failed is retried
// only in the master's own turns too.
func (a *Agent) renewStart(sched []hostprep.CertDue) time.Time {
	now := a.now()
	if len(sched) == 0 {
		return now.Add(renewLookMax)
	}
	seat := roles.Worker
	if as, ok := a.Assignment(); ok {
		seat = as.Seat
	}
	return pki.Staggered(latest(sched[0].RenewAt, now), seat, a.cluster.Masters, pki.RenewWindow(sched[0].Lifetime))
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
