package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"maps"
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

// spawn runs f in a goroutine that Stop waits for.
func (a *Agent) spawn(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// every runs f every period until the agent stops (the first run one period
// after the call).
func (a *Agent) every(period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// send delivers a letter in the background (a slow peer never holds up the
// decision loop).
func (a *Agent) send(l gossip.Letter) {
	a.spawn(func() {
		if err := a.g.Send(l); err != nil {
			a.log.Debug("send letter", "kind", l.Kind, "to", l.To, "err", err)
		}
	})
}

// claimEvery is how often a node without its decision asks the masters again.
func (a *Agent) claimEvery() time.Duration {
	if a.opts.Timing == gossip.Fast {
		return 300 * time.Millisecond
	}
	return time.Second
}

// claimFresh is how long an allocator keeps a claim it has not yet granted
// after the claim last arrived: a claimant without its decision claims again
// every claimEvery, so an older claim is from a node that is gone or that
// this master can no longer hear (measured on this node's clock: the
// claimant's may be skewed).
func (a *Agent) claimFresh() time.Duration { return 3 * a.claimEvery() }

// maxClaims bounds the claims an allocator holds at once.
const maxClaims = 1024

// loop reacts to state and membership changes until Stop.
func (a *Agent) loop() {
	defer close(a.done)
	tick := time.NewTicker(a.interval() / 4)
	defer tick.Stop()
	var savedDigest uint64
	lastSave, lastReconnect, lastPass := time.Time{}, time.Now(), time.Now()
	a.reconcile() // a joiner claims its place at once
	for {
		select {
		case <-a.stop:
			return
		case l := <-a.g.Letters():
			a.receive(l)
			a.drainLetters() // many claims at once: decide for them together
		case <-a.state.Changed():
			// Records arrive in bursts (a joiner's state, a wave of
			// decisions): take them together rather than one pass each,
			// since each pass reads a fresh copy of the whole state.
			if wait := a.interval()/40 - time.Since(lastPass); wait > 0 {
				select {
				case <-a.stop:
					return
				case <-time.After(wait):
				}
			}
		case <-a.g.MembershipChanged():
		case <-tick.C:
		}
		lastPass = time.Now()
		a.reconcile()
		a.keepEndpoint()
		a.kickHost()
		if time.Since(lastReconnect) > 5*a.interval() {
			a.reconnect()
			lastReconnect = time.Now()
		}
		a.meetUnknown()
		if dg, _ := a.state.Digest(); dg != savedDigest || time.Since(lastSave) > 10*a.interval() {
			if time.Since(lastSave) > a.interval() {
				a.saveState()
				savedDigest, lastSave = dg, time.Now()
			}
		}
	}
}

// reconcile does this node's part: claim its place, decide if it is the
// allocator, announce itself, hand secrets to masters that lack them,
// remember its own subnet.
func (a *Agent) reconcile() {
	snap := a.state.Snapshot()
	alive := a.g.Alive()
	a.claim(snap, alive)
	if a.isAllocator(snap, alive) {
		a.allocate(snap, alive)
		a.promote(alive)
		snap = a.state.Snapshot()
	}
	a.announce(snap)
	a.shareSecrets(snap, alive)
	a.choresDue(snap, alive)
	if as, ok := a.Assignment(); ok && as.Active() && as.PodCIDR != a.currentCIDR() {
		if err := a.saveIdentity(func(id *datadir.Identity) { id.PodCIDR = as.PodCIDR }); err != nil {
			a.log.Error("save node identity", "err", err)
		}
	}
}

// isAllocator: the first alive master holding the keys, or, in a cluster
// with no decision yet, the node that created it (it holds the keys).
func (a *Agent) isAllocator(snap gossip.Snapshot, alive map[string]bool) bool {
	if !a.HasSecrets() {
		return false
	}
	if len(snap.Assignments) == 0 {
		return true // a new cluster: its creator seats itself
	}
	return roles.Allocator(snap, alive) == a.id.Name
}

// allocate plans, signs and publishes decisions for the claims held.
//
// Only claims that arrived lately from nodes gossip does not report dead are
// granted: a master that became the allocator when the old one died, or on
// its side of a partition, still holds the claims every joiner sent to all
// masters, and a decision for a node it cannot reach is at best useless and
// at worst a second decision for a node that got its place on the other side
// (after the heal, the newer of the two would move that node off the subnet
// it uses, and could move another node off a subnet it held alone). A
// claimant that is still waiting claims again.
func (a *Agent) allocate(snap gossip.Snapshot, alive map[string]bool) {
	a.mu.Lock()
	for name, c := range a.claims {
		// Gossip's word that a claimant is dead counts for the address it
		// knows: a node back at a new address is refused by gossip (its
		// decision binds the old one) until this very claim moves it.
		dead := !alive[name] && a.g.KnownAt(name, netip.AddrPortFrom(c.Addr, c.Port))
		if time.Since(a.heardAt[name]) > a.claimFresh() || (name != a.id.Name && dead) {
			delete(a.claims, name)
			delete(a.heardAt, name)
		}
	}
	claims := maps.Clone(a.claims)
	key := ed25519.NewKeyFromSeed(a.secrets.DecisionKey)
	a.mu.Unlock()
	settled := a.settled()
	deferred := false
	for _, d := range roles.Plan(snap, claims, a.cluster, a.id.Name, a.state.Tick) {
		if old, ok := snap.Assignments[d.Node]; ok && moves(old, d) && !settled && a.mayDefer() {
			// A subnet or seat held twice is resolved only once this
			// node's records have stopped changing (for at most a few
			// intervals: a busy cluster's records may never rest): after
			// a partition heals, the two sides' records arrive over a
			// moment, and a decision that looks contested may already be
			// superseded by one still on its way (moving a node that held
			// its subnet alone). The next pass decides again.
			deferred = true
			continue
		}
		d.Sign(key)
		a.log.Info("decided", "for", d.Node, "podCIDR", d.PodCIDR, "seat", d.Seat, "released", d.Released, "error", d.Error)
		if err := a.g.Decide(d); err != nil {
			a.log.Error("publish decision", "err", err)
			continue
		}
		a.mu.Lock()
		delete(a.claims, d.Node)
		delete(a.heardAt, d.Node)
		a.mu.Unlock()
		if d.Node != a.id.Name {
			a.sendDecision(d) // the claimant learns it at once, not by gossip
		}
	}
	if !deferred {
		a.mu.Lock()
		a.deferSince = time.Time{}
		a.mu.Unlock()
	}
}

// mayDefer reports whether a move may still wait for the records to settle:
// for at most ten intervals from the first deferral.
func (a *Agent) mayDefer() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.deferSince.IsZero() {
		a.deferSince = time.Now()
	}
	return time.Since(a.deferSince) < 10*a.interval()
}

// moves reports whether d takes an active node off the subnet or seat its
// decision old gives it.
func moves(old, d gossip.Assignment) bool {
	return old.Active() && !d.Released && (old.PodCIDR != d.PodCIDR || old.Seat != d.Seat)
}

// settled reports whether this node's records have not changed for an
// two intervals (see allocate).
func (a *Agent) settled() bool {
	dg, _ := a.state.Digest()
	a.mu.Lock()
	defer a.mu.Unlock()
	if dg != a.settleDigest {
		a.settleDigest, a.settleSince = dg, time.Now()
	}
	return time.Since(a.settleSince) >= 2*a.interval()
}

// myClaim is this node's claim, unsigned: its name, keys and address.
func (a *Agent) myClaim() gossip.Claim {
	addr := a.g.LocalAddr()
	c := gossip.Claim{Name: a.id.Name, SignKey: a.signPub(), BoxKey: gossip.Key(a.key.PublicKey().Bytes()),
		Addr: addr.Addr(), Port: addr.Port(), WantCIDR: a.currentCIDR(), Time: time.Now().UnixNano()}
	a.mu.Lock()
	c.TokenID, c.Proof = a.id.SeatToken, a.id.SeatProof
	a.mu.Unlock()
	return c
}

// claim asks the masters for this node's decision while it has none (or
// its address changed), at most every claimEvery.
func (a *Agent) claim(snap gossip.Snapshot, alive map[string]bool) {
	c := a.myClaim()
	if as, ok := snap.Assignments[a.id.Name]; ok && roles.Answered(as, c) {
		return // settled (or told why not)
	}
	a.mu.Lock()
	if time.Since(a.claimedAt) < a.claimEvery() {
		a.mu.Unlock()
		return
	}
	a.claimedAt = time.Now()
	a.mu.Unlock()
	c.Sign(a.sign) // only when sent: signing on every pass of the loop costs more than the rest of it
	if a.isAllocator(snap, alive) {
		a.mu.Lock()
		a.claims[c.Name], a.heardAt[c.Name] = c, time.Now()
		a.mu.Unlock()
		return
	}
	// Every alive master is asked, whether or not this node has yet heard
	// that it holds the keys: a node without a decision cannot pull the
	// records it lacks, and those without the keys ignore the claim.
	var to []string
	for _, m := range roles.Masters(snap) {
		if m != a.id.Name && alive[m] {
			to = append(to, m)
		}
	}
	if len(to) == 0 { // no master known yet: ask whoever is there (non-masters ignore it)
		for m := range alive {
			if m != a.id.Name && len(to) < 8 {
				to = append(to, m)
			}
		}
	}
	body := gossip.EncodeClaim(c)
	for _, m := range to {
		a.send(gossip.Letter{Kind: gossip.LetterClaim, To: m, Body: body})
	}
}

// announce publishes this node's own record when what it says changed:
// masters announce that they hold the keys.
func (a *Agent) announce(snap gossip.Snapshot) {
	if _, bound := a.Assignment(); !bound {
		return
	}
	cur, ok := snap.Nodes[a.id.Name]
	if want := a.HasSecrets(); (ok && cur.HasSecrets == want) || (!ok && !want) {
		return
	}
	if err := a.publishSelf(nil); err != nil {
		a.log.Error("publish own record", "err", err)
	}
}

func (a *Agent) currentCIDR() netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id.PodCIDR
}

// shareSecrets seals the master-only keys to each master that lacks them,
// with the key its decision binds.
func (a *Agent) shareSecrets(snap gossip.Snapshot, alive map[string]bool) {
	a.mu.Lock()
	sec := a.secrets
	a.mu.Unlock()
	if sec == nil {
		return
	}
	for _, m := range roles.Masters(snap) {
		as := snap.Assignments[m]
		if m == a.id.Name || snap.Nodes[m].HasSecrets || !alive[m] || time.Since(a.sentAt[m]) < 5*a.interval() {
			continue
		}
		plain, err := json.Marshal(sec)
		if err != nil {
			continue
		}
		box, err := pki.Seal(as.BoxKey[:], plain, []byte(m))
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

// drainLetters handles every letter already waiting.
func (a *Agent) drainLetters() {
	for {
		select {
		case l := <-a.g.Letters():
			a.receive(l)
		default:
			return
		}
	}
}

// receive handles a letter addressed to this node (its signature is
// already checked against its author's key). What a letter may ask depends
// on its author: only masters send secrets, certificates and refusals.
func (a *Agent) receive(l gossip.Letter) {
	snap := a.state.Snapshot()
	switch l.Kind {
	case gossip.LetterClaim:
		a.receiveClaim(snap, l)
	case gossip.LetterCSR:
		if as, ok := snap.Assignments[l.From]; ok && as.Active() {
			a.signRequests(l)
		}
	case gossip.LetterSecrets, gossip.LetterCert, gossip.LetterRefused:
		if !roles.IsMaster(snap, l.From) {
			a.log.Warn("letter from a node that is not a master ignored", "kind", l.Kind, "from", l.From)
			return
		}
		switch l.Kind {
		case gossip.LetterSecrets:
			a.receiveSecrets(l)
		case gossip.LetterCert:
			a.receiveCerts(l)
		case gossip.LetterRefused:
			// The body names the refused key first: a refusal of someone
			// else's claim under this node's name is not for this node.
			pub := a.signPub()
			if len(l.Body) < len(pub) || string(l.Body[:len(pub)]) != string(pub[:]) {
				return
			}
			why := l.Body[len(pub):]
			select {
			case a.refused <- string(why[:min(len(why), 512)]):
			default:
			}
		}
	case gossip.LetterKey:
		a.receiveKeyStep(snap, l)
	case gossip.LetterKeyAck:
		a.receiveKeyAck(l)
	default:
		a.log.Debug("unexpected letter", "kind", l.Kind, "from", l.From)
	}
}

// receiveClaim keeps a valid claim for the allocator's next plan, or tells
// the claimant why it cannot be granted.
func (a *Agent) receiveClaim(snap gossip.Snapshot, l gossip.Letter) {
	if !a.HasSecrets() {
		return // only a master holding the keys can grant it
	}
	c, err := gossip.DecodeClaim(l.Body)
	if err == nil {
		err = gossip.ValidateClaim(c, time.Now().UnixNano())
	}
	if err != nil {
		a.log.Warn("refused a claim", "from", l.From, "err", err)
		return
	}
	if why := roles.Refusal(snap, c); why != "" {
		a.mu.Lock()
		due := time.Since(a.refusedAt[c.Name]) > 5*time.Second
		if due {
			a.refusedAt[c.Name] = time.Now()
		}
		a.mu.Unlock()
		if due {
			a.log.Warn("refused a claim", "node", c.Name, "why", why)
			l := gossip.Letter{Kind: gossip.LetterRefused, To: c.Name, Body: append(c.SignKey[:], why...)}
			a.spawn(func() {
				if err := a.g.SendAt(l, netip.AddrPortFrom(c.Addr, c.Port)); err != nil {
					a.log.Debug("send refusal", "to", c.Name, "err", err)
				}
			})
		}
		return
	}
	if old, ok := snap.Assignments[c.Name]; ok && roles.Answered(old, c) {
		// Granted already, but the claimant missed it (the decision's
		// broadcast can pass a node that joined a moment ago): send it.
		a.sendDecision(old)
		return
	}
	a.mu.Lock()
	if _, ok := a.claims[c.Name]; ok || len(a.claims) < maxClaims {
		a.claims[c.Name], a.heardAt[c.Name] = c, time.Now()
	}
	a.mu.Unlock()
}

// sendDecision hands a node its decision directly (a node without one
// cannot ask for a sync: its letters are not yet verifiable).
func (a *Agent) sendDecision(d gossip.Assignment) {
	a.send(gossip.Letter{Kind: gossip.LetterSyncData, To: d.Node, Body: gossip.EncodeRecords([][]byte{gossip.EncodeAssignment(d)})})
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
	if err := checkSecrets(a.state.Cluster(), sec); err != nil {
		a.log.Warn("secrets from "+s.From+" rejected", "err", err)
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
	if err := a.publishSelf(nil); err != nil && !errors.Is(err, gossip.ErrUnbound) {
		a.log.Error("publish self", "err", err)
	}
}

func (a *Agent) saveState() {
	if err := a.opts.Dir.WriteFile(datadir.StateFile, a.state.EncodeFull()); err != nil {
		a.log.Warn("save state", "err", err)
	}
}

// Stop ends the agent. With leave, it first tells the cluster it is going
// (SIGTERM, `knode reset`); without, it just stops (as a crash would).
func (a *Agent) Stop(leave bool) error {
	a.stopOnce.Do(func() {
		close(a.stop)
		<-a.done
		a.cancel()
		if a.api != nil {
			a.api.close()
		}
		if a.endpoint != nil {
			a.endpoint.Stop()
		}
		a.saveState()
		if leave {
			a.stopErr = a.g.Leave(3 * time.Second)
		} else {
			a.stopErr = a.g.Shutdown()
		}
		a.wg.Wait() // letters in flight fail fast once gossip is down
		close(a.stopped)
	})
	<-a.stopped
	return a.stopErr
}

// Remove marks this node removed so the allocator releases its subnet and
// seat, waits (up to timeout) for that decision, then leaves.
func (a *Agent) Remove(timeout time.Duration) error {
	if _, bound := a.Assignment(); bound {
		a.withdrawImages()
		if err := a.publishSelf(func(n *gossip.NodeInfo) { n.Removed = true }); err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if as, ok := a.state.Binding(a.id.Name); !ok || as.Released {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return a.Stop(true)
}

// meetUnknown contacts a node that holds a decision but that memberlist has
// never reported at the address the decision binds, once that lasts:
// memberlist learns of a joiner only from gossip, and one that missed the
// joiner's alive message would otherwise wait for its periodic push/pull (30
// s to minutes). A node back at a new address is such a node too: its alive
// messages were refused until its decision followed it there.
func (a *Agent) meetUnknown() {
	snap := a.state.Snapshot()
	now := time.Now()
	var target string
	a.mu.Lock()
	for name, as := range snap.Assignments {
		if !as.Active() || name == a.id.Name || a.g.KnownAt(name, netip.AddrPortFrom(as.Addr, as.Port)) {
			delete(a.unknownSince, name)
			continue
		}
		since, ok := a.unknownSince[name]
		if !ok {
			a.unknownSince[name] = now
		} else if now.Sub(since) > a.interval() && target == "" {
			target = gossip.HostPort(as.Addr, as.Port)
			a.unknownSince[name] = now // next try after another interval
		}
	}
	a.mu.Unlock()
	if target == "" || !a.reconnecting.CompareAndSwap(false, true) {
		return
	}
	a.extraSyncs.Add(1)
	a.spawn(func() {
		defer a.reconnecting.Store(false)
		if err := a.g.Join(target); err != nil {
			a.log.Debug("contact a node gossip has not reported", "peer", target, "err", err)
		}
	})
}

// reconnect tries to reach one member that gossip has given up on (dead, not
// released). memberlist never contacts dead nodes again, so without this two
// halves of a healed partition would stay apart.
func (a *Agent) reconnect() {
	snap := a.state.Snapshot()
	var targets []string
	for _, m := range a.g.Members() {
		if m.State != gossip.StateDead {
			continue
		}
		if as, ok := snap.Assignments[m.Name]; ok && as.Active() {
			targets = append(targets, gossip.HostPort(as.Addr, as.Port))
		}
	}
	if len(targets) == 0 || !a.reconnecting.CompareAndSwap(false, true) {
		return
	}
	target := targets[rand.IntN(len(targets))]
	a.extraSyncs.Add(1)
	a.spawn(func() {
		defer a.reconnecting.Store(false)
		if err := a.g.Join(target); err == nil {
			a.log.Info("reconnected", "peer", target)
		}
	})
}
