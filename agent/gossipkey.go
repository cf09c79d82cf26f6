package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// Gossip key rotation (`knode token rotate-gossip-key`): a master makes a new
// key and takes every node through three steps, one after the other, each
// sent sealed to the node's own key and acknowledged: install the new key
// (every node can then read it), use it (every node sends with it), drop the
// old ones. memberlist reads with any installed key, so nothing is lost in
// between. A removed or reset node gets none of it: the key it knew stops
// opening the cluster's gossip once the old keys are dropped.

// RotateReport says how a rotation went.
type RotateReport struct {
	Nodes int `json:"nodes"` // nodes that took every step (this one included)
	// Missing are the nodes that did not confirm a step in time. After the
	// install step the rotation stops for them unless forced; a node left
	// without the new key must be reset and join again.
	Missing []string `json:"missing,omitempty"`
	Dropped bool     `json:"dropped"` // the old keys were dropped everywhere that answered
}

// keyAckKey is how a master matches acknowledgements to what it asked.
type keyAckKey struct {
	node string
	step gossip.KeyStep
	hash [8]byte
}

func keyHash(k []byte) [8]byte {
	s := sha256.Sum256(k)
	return [8]byte(s[:8])
}

// RotateGossipKey replaces the cluster's gossip key. Only a master can (it
// holds the decision key, so its letters are trusted for this); one rotation
// runs at a time. Nodes that do not confirm the install step within ctx stop
// the rotation (the old key stays in use) unless force is set.
func (a *Agent) RotateGossipKey(ctx context.Context, force bool) (RotateReport, error) {
	if _, ok := a.decisionKey(); !ok {
		return RotateReport{}, ErrNotMaster
	}
	if !a.rotating.CompareAndSwap(false, true) {
		return RotateReport{}, errors.New("a gossip key rotation is already running on this node")
	}
	defer a.rotating.Store(false)
	key, err := pki.NewGossipKey()
	if err != nil {
		return RotateReport{}, err
	}
	snap := a.state.Snapshot()
	var nodes []string
	for _, name := range slices.Sorted(maps.Keys(snap.Assignments)) {
		if as := snap.Assignments[name]; as.Active() && !snap.Nodes[name].Removed && name != a.id.Name {
			nodes = append(nodes, name)
		}
	}
	rep := RotateReport{}
	for _, step := range []gossip.KeyStep{gossip.KeyInstall, gossip.KeyUse, gossip.KeyDrop} {
		if err := a.applyKeyStep(step, key); err != nil {
			return rep, err
		}
		missing := a.keyStep(ctx, snap, nodes, step, key)
		if len(missing) > 0 {
			rep.Missing = missing
			if step == gossip.KeyInstall && !force {
				a.abortRotation(snap, nodes, missing, key)
				return rep, fmt.Errorf("%d node(s) did not install the new gossip key: %s; the old key stays in use (bring them up, `knode remove` them, or rerun with --force to leave them out)",
					len(missing), strings.Join(missing, ", "))
			}
			nodes = slices.DeleteFunc(nodes, func(n string) bool { return slices.Contains(missing, n) })
		}
		a.log.Info("gossip key rotation step done", "step", step, "nodes", len(nodes)+1)
	}
	rep.Nodes, rep.Dropped = len(nodes)+1, true
	return rep, nil
}

// abortRotation takes the new key out of every keyring that installed it
// (best effort: a key left behind is never used, and a later rotation's drop
// step removes it).
func (a *Agent) abortRotation(snap gossip.Snapshot, nodes, missing []string, key []byte) {
	if err := a.applyKeyStep(gossip.KeyAbort, key); err != nil {
		a.log.Warn("abort gossip key rotation", "err", err)
	}
	for _, n := range nodes {
		if !slices.Contains(missing, n) {
			a.sendKeyStep(snap, n, gossip.KeyAbort, key)
		}
	}
}

func (a *Agent) sendKeyStep(snap gossip.Snapshot, to string, step gossip.KeyStep, key []byte) {
	box := snap.Assignments[to].BoxKey
	sealed, err := pki.Seal(box[:], append([]byte{byte(step)}, key...), []byte(to))
	if err != nil {
		a.log.Warn("seal gossip key", "to", to, "err", err)
		return
	}
	a.send(gossip.Letter{Kind: gossip.LetterKey, To: to, Body: sealed})
}

// keyStep sends step to every node until each confirms or ctx ends; it
// returns the nodes that did not confirm.
func (a *Agent) keyStep(ctx context.Context, snap gossip.Snapshot, nodes []string, step gossip.KeyStep, key []byte) []string {
	h := keyHash(key)
	pending := map[string]bool{}
	for _, n := range nodes {
		pending[n] = true
	}
	for len(pending) > 0 {
		for n := range pending {
			if a.takeKeyAck(keyAckKey{n, step, h}) {
				delete(pending, n)
				continue
			}
			a.sendKeyStep(snap, n, step, key)
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return slices.Sorted(maps.Keys(pending))
		case <-a.keyAcked:
		case <-time.After(a.interval() / 2):
		}
	}
	return nil
}

func (a *Agent) takeKeyAck(k keyAckKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keyAcks[k] {
		delete(a.keyAcks, k)
		return true
	}
	return false
}

// applyKeyStep changes this node's keyring and saves it, so that a restart
// comes back with the keys the cluster uses.
func (a *Agent) applyKeyStep(step gossip.KeyStep, key []byte) error {
	if err := a.g.ApplyKeyStep(step, key); err != nil {
		return err
	}
	return a.saveIdentity(func(id *datadir.Identity) { id.GossipKeys = a.g.Keys() })
}

// receiveKeyStep applies a step a master sent, and confirms it.
func (a *Agent) receiveKeyStep(snap gossip.Snapshot, l gossip.Letter) {
	if !roles.IsMaster(snap, l.From) {
		a.log.Warn("gossip key from a node that is not a master ignored", "from", l.From)
		return
	}
	plain, err := pki.Open(a.key, l.Body, []byte(a.id.Name))
	if err != nil || len(plain) != 33 {
		a.log.Warn("gossip key from "+l.From+" rejected", "err", err)
		return
	}
	step, key := gossip.KeyStep(plain[0]), plain[1:]
	if err := a.applyKeyStep(step, key); err != nil {
		a.log.Warn("gossip key step from "+l.From, "step", step, "err", err)
		return
	}
	h := keyHash(key)
	a.send(gossip.Letter{Kind: gossip.LetterKeyAck, To: l.From, Body: append([]byte{byte(step)}, h[:]...)})
}

// receiveKeyAck notes a node's confirmation for a rotation in progress.
func (a *Agent) receiveKeyAck(l gossip.Letter) {
	if !a.rotating.Load() || len(l.Body) != 9 {
		return
	}
	a.mu.Lock()
	if len(a.keyAcks) < 4*maxClaims {
		a.keyAcks[keyAckKey{l.From, gossip.KeyStep(l.Body[0]), [8]byte(l.Body[1:])}] = true
	}
	a.mu.Unlock()
	select {
	case a.keyAcked <- struct{}{}:
	default:
	}
}

// saveIdentity changes this node's identity and writes it, one writer at a
// time (so that no older copy overwrites a newer one).
func (a *Agent) saveIdentity(edit func(*datadir.Identity)) error {
	a.idSave.Lock()
	defer a.idSave.Unlock()
	a.mu.Lock()
	edit(&a.id)
	id := a.id
	a.mu.Unlock()
	return a.opts.Dir.WriteJSON(datadir.NodeFile, id)
}
