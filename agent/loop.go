package agent

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

func (a *Agent) interval() time.Duration {
	if a.opts.Timing == gossip.Fast {
		return 200 * time.Millisecond
	}
	return 2 * time.Second
}

// loop reacts to state and membership changes until Stop.
func (a *Agent) loop() {
	defer close(a.done)
	tick := time.NewTicker(a.interval())
	defer tick.Stop()
	var savedClock uint64
	lastSave, lastReconnect := time.Time{}, time.Now()
	for {
		select {
		case <-a.stop:
			return
		case l := <-a.g.Letters():
			a.receive(l)
		case <-a.state.Changed():
		case <-a.g.MembershipChanged():
		case <-tick.C:
		}
		a.reconcile()
		a.keepPeers(context.Background())
		if time.Since(lastReconnect) > 5*a.interval() {
			a.reconnect()
			lastReconnect = time.Now()
		}
		a.repair()
		if snap := a.state.Snapshot(); snap.Clock != savedClock || time.Since(lastSave) > 10*a.interval() {
			if time.Since(lastSave) > a.interval() {
				a.saveState(snap)
				savedClock, lastSave = snap.Clock, time.Now()
			}
		}
	}
}

// reconcile does this node's part: decide if it is the allocator, hand secrets
// to masters that lack them, remember its own subnet.
func (a *Agent) reconcile() {
	snap := a.state.Snapshot()
	alive := a.g.Alive()
	if roles.Allocator(snap, alive) == a.id.Name {
		for _, d := range roles.Plan(snap, a.cluster, alive, a.id.Name, a.state.Tick) {
			a.log.Info("decided", "for", d.Node, "podCIDR", d.PodCIDR, "seat", d.Seat, "released", d.Released, "error", d.Error)
			if err := a.g.Decide(d); err != nil {
				a.log.Error("publish decision", "err", err)
			}
		}
		snap = a.state.Snapshot()
	}
	a.shareSecrets(snap, alive)
	a.choresDue(snap, alive)
	if as, ok := snap.Assignments[a.id.Name]; ok && !as.Released && as.Error == "" && as.PodCIDR != a.currentCIDR() {
		a.mu.Lock()
		a.id.PodCIDR = as.PodCIDR
		id := a.id
		a.mu.Unlock()
		if err := a.opts.Dir.WriteJSON(datadir.NodeFile, id); err != nil {
			a.log.Error("save node identity", "err", err)
		}
	}
}

func (a *Agent) currentCIDR() netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id.PodCIDR
}

// shareSecrets seals the master-only keys to each master that lacks them.
func (a *Agent) shareSecrets(snap gossip.Snapshot, alive map[string]bool) {
	a.mu.Lock()
	sec := a.secrets
	a.mu.Unlock()
	if sec == nil {
		return
	}
	for _, m := range roles.Masters(snap) {
		n, ok := snap.Nodes[m]
		if m == a.id.Name || !ok || n.HasSecrets || !alive[m] || time.Since(a.sentAt[m]) < 5*a.interval() {
			continue
		}
		plain, err := json.Marshal(sec)
		if err != nil {
			continue
		}
		box, err := pki.Seal(n.PubKey, plain, []byte(m))
		if err != nil {
			a.log.Warn("seal secrets", "to", m, "err", err)
			continue
		}
		a.sentAt[m] = time.Now()
		if err := a.g.Send(gossip.Letter{Kind: gossip.LetterSecrets, To: m, Body: box}); err != nil {
			a.log.Warn("send secrets", "to", m, "err", err)
			continue
		}
		a.log.Info("sent master secrets", "to", m)
	}
}

// receive handles a letter addressed to this node.
func (a *Agent) receive(l gossip.Letter) {
	switch l.Kind {
	case gossip.LetterSecrets:
		a.receiveSecrets(l)
	case gossip.LetterCSR:
		a.signRequests(l)
	case gossip.LetterCert:
		a.receiveCerts(l)
	default:
		a.log.Debug("unknown letter", "kind", l.Kind, "from", l.From)
	}
}

// receiveSecrets opens, checks and stores the master-only keys.
func (a *Agent) receiveSecrets(s gossip.Letter) {
	if a.HasSecrets() {
		return
	}
	plain, err := pki.Open(a.key, s.Body, []byte(a.id.Name))
	if err != nil {
		a.log.Warn("secrets from "+s.From+" rejected", "err", err)
		return
	}
	var sec datadir.Secrets
	if err := json.Unmarshal(plain, &sec); err != nil {
		a.log.Warn("secrets from "+s.From+" undecodable", "err", err)
		return
	}
	ci := a.state.Snapshot().Cluster
	if _, err := pki.LoadCA(ci.CACert, sec.CAKey); err != nil {
		a.log.Warn("secrets from "+s.From+" do not match the cluster CA", "err", err)
		return
	}
	if err := a.opts.Dir.SaveSecrets(sec); err != nil {
		a.log.Error("save secrets", "err", err)
		return
	}
	a.mu.Lock()
	a.secrets = &sec
	a.mu.Unlock()
	a.log.Info("received master secrets", "from", s.From)
	if err := a.publishSelf(nil); err != nil {
		a.log.Error("publish self", "err", err)
	}
}

func (a *Agent) saveState(snap gossip.Snapshot) {
	if err := a.opts.Dir.WriteJSON(datadir.StateFile, snap); err != nil {
		a.log.Warn("save state", "err", err)
	}
}

// Stop ends the agent. With leave, it first tells the cluster it is going
// (SIGTERM, `knode reset`); without, it just stops (as a crash would).
func (a *Agent) Stop(leave bool) error {
	a.stopOnce.Do(func() {
		close(a.stop)
		<-a.done
		if a.api != nil {
			a.api.close()
		}
		a.saveState(a.state.Snapshot())
		if leave {
			a.stopErr = a.g.Leave(3 * time.Second)
		} else {
			a.stopErr = a.g.Shutdown()
		}
		close(a.stopped)
	})
	<-a.stopped
	return a.stopErr
}

// Remove marks this node removed so the allocator releases its subnet and
// seat, waits (up to timeout) for that decision, then leaves.
func (a *Agent) Remove(timeout time.Duration) error {
	if err := a.publishSelf(func(n *gossip.NodeInfo) { n.Removed = true }); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if as, ok := a.state.Snapshot().Assignments[a.id.Name]; !ok || as.Released {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a.Stop(true)
}

// reconnect tries to reach one member that gossip has given up on (dead, not
// removed). memberlist never contacts dead nodes again, so without this two
// halves of a healed partition would stay apart.
func (a *Agent) reconnect() {
	var targets []string
	for _, m := range a.g.Members() {
		if m.State != gossip.StateDead {
			continue
		}
		if n, ok := a.state.Snapshot().Nodes[m.Name]; ok && !n.Removed {
			targets = append(targets, gossip.HostPort(n.Address, n.Port))
		}
	}
	if len(targets) > 0 {
		target := targets[rand.IntN(len(targets))]
		a.syncWith(target, func() { a.log.Info("reconnected", "peer", target) })
	}
}

// repair fetches the full state from a peer when this node has been missing
// a live member's record or decision for a while: gossip loses a few
// messages under load, and memberlist's periodic push/pull comes only every
// 30-60 s. A Join with a member is an immediate push/pull with it.
func (a *Agent) repair() {
	snap, alive := a.state.Snapshot(), a.g.Alive()
	var from string
	for name := range alive {
		if _, ok := snap.Nodes[name]; !ok && name != a.id.Name {
			from = name // its own record: ask it
			break
		}
		if _, ok := snap.Assignments[name]; !ok && snap.Nodes[name].JoinedAt != 0 {
			from = roles.Allocator(snap, alive) // its decision: ask the allocator
			break
		}
	}
	a.mu.Lock()
	if from == "" || from == a.id.Name {
		a.missingSince = time.Time{}
		a.mu.Unlock()
		return
	}
	if a.missingSince.IsZero() {
		a.missingSince = time.Now()
	}
	due := time.Since(a.missingSince) > 3*time.Second
	a.mu.Unlock()
	if !due {
		return
	}
	// The gossip layer knows every live member's address, also of one
	// whose record is the missing piece.
	for _, m := range a.g.Members() {
		if m.Name == from {
			a.syncWith(m.Addr.String(), func() {
				a.mu.Lock()
				a.missingSince = time.Time{}
				a.mu.Unlock()
			})
			return
		}
	}
}

// syncWith starts one full-state exchange with addr in the background (at
// most one at a time) and calls ok when it succeeded.
func (a *Agent) syncWith(addr string, ok func()) {
	if !a.reconnecting.CompareAndSwap(false, true) {
		return
	}
	a.extraSyncs.Add(1)
	go func() {
		defer a.reconnecting.Store(false)
		if err := a.g.Join(addr); err == nil {
			ok()
		}
	}()
}
