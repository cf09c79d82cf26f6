package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"knode.dev/knode/config"
	"knode.dev/knode/etcdmember"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/roles"
)

// `knode remove <node>` takes a dead or gone node out of the cluster from a
// master: its etcd member (masters), then its seat and subnet, released by a
// decision signed with the decision key, which only masters hold. The Node
// object goes with the release: the allocator's chores delete the Node of
// every released decision.

// RemoveResult says what RemoveNode did.
type RemoveResult struct {
	Node string `json:"node"`
	// EtcdMember is the hex ID of the etcd member removed, if the node had one.
	EtcdMember string `json:"etcdMember,omitempty"`
	// Released: its seat and subnet are released (the decision is published).
	Released bool `json:"released"`
}

// ErrAlive says the node to remove still answers gossip.
var ErrAlive = errors.New("node is alive")

// RemoveNode removes the node name from the cluster (see above). Without
// force it refuses a node that is alive (`knode reset` on it removes it
// cleanly) and an etcd removal that would lose quorum.
func (a *Agent) RemoveNode(ctx context.Context, name string, force bool) (RemoveResult, error) {
	res := RemoveResult{Node: name}
	key, ok := a.decisionKey()
	if !ok {
		return res, ErrNotMaster
	}
	if name == a.id.Name {
		return res, config.Usagef("%s is this node: run `knode reset` here to remove it", name)
	}
	snap := a.state.Snapshot()
	d, ok := roles.Release(snap, name)
	if !ok {
		return res, config.Usagef("no node %q holds a place in the cluster (see `knode status`)", name)
	}
	if a.g.Alive()[name] && !force {
		return res, fmt.Errorf("%w: %s still answers gossip: run `knode reset` on it, or pass --force to remove it anyway", ErrAlive, name)
	}
	if roles.IsMaster(snap, name) {
		id, err := a.removeEtcdMember(ctx, name, snap.Assignments[name].Addr, force)
		if err != nil {
			return res, err
		}
		res.EtcdMember = id
	}
	d.Version, d.By = a.state.Tick(), a.id.Name
	d.Sign(key)
	if err := a.g.Decide(d); err != nil {
		return res, fmt.Errorf("publish the release of %s: %w", name, err)
	}
	a.log.Info("released a removed node", "removed", name, "etcdMember", res.EtcdMember)
	res.Released = true
	a.kickHost()
	return res, nil
}

// decisionKey is the key decisions are signed with; false on workers.
func (a *Agent) decisionKey() (ed25519.PrivateKey, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.secrets == nil || len(a.secrets.DecisionKey) != ed25519.SeedSize {
		return nil, false
	}
	return ed25519.NewKeyFromSeed(a.secrets.DecisionKey), true
}

// removeEtcdMember removes the etcd member of the master name (address addr)
// through this master's etcd and the other masters'. It returns the removed
// member's ID, or "" when name has none (it never got so far).
func (a *Agent) removeEtcdMember(ctx context.Context, name string, addr netip.Addr, force bool) (string, error) {
	if h := a.hostOpts(); h == nil || h.Host == nil {
		return "", errors.New("this node's host is not configured by knode: no etcd to reach")
	}
	// This master's etcd first, then the other masters' (not the one removed).
	endpoints := []string{LocalEtcd}
	snap := a.state.Snapshot()
	for _, m := range roles.Masters(snap) {
		if as := snap.Assignments[m]; m != name && m != a.id.Name && as.Addr.IsValid() {
			endpoints = append(endpoints, "https://"+netip.AddrPortFrom(as.Addr, 2379).String())
		}
	}
	cli, err := etcdmember.Dial(hostprep.EtcdClientConfig(endpoints...))
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ms, err := cli.List(ctx)
	if err != nil {
		return "", err
	}
	m, ok := etcdmember.Find(ms, name, "https://"+netip.AddrPortFrom(addr, 2380).String())
	if !ok {
		return "", nil
	}
	if err := etcdmember.CheckRemove(ms, m.ID); err != nil {
		if !force {
			return "", fmt.Errorf("etcd member %s (%x): %w; pass --force to remove it anyway", name, m.ID, err)
		}
		a.log.Warn("removing an etcd member although quorum may be lost (--force)", "member", name, "err", err)
	}
	if err := cli.Remove(ctx, m.ID); err != nil {
		return "", err
	}
	return strconv.FormatUint(m.ID, 16), nil
}

// leaveEtcd removes this master's own etcd member before `knode reset`
// announces its removal, so that the cluster keeps no dead member and the
// host can join again with the same address. It returns the member's hex ID,
// or "" on a worker or an unconfigured host. It never forces: a removal that
// would lose quorum is an error, and the reset goes on (`knode remove` on
// another master can finish it).
func (a *Agent) leaveEtcd(ctx context.Context) (string, error) {
	as, ok := a.Assignment()
	if !ok || !roles.IsMaster(a.state.Snapshot(), a.id.Name) {
		return "", nil
	}
	if h := a.hostOpts(); h == nil || h.Host == nil {
		return "", nil
	}
	id, err := a.removeEtcdMember(ctx, a.id.Name, as.Addr, false)
	if err != nil {
		a.log.Warn("leaving etcd before reset failed; `knode remove` on another master removes the member", "err", err)
		return "", err
	}
	a.log.Info("left etcd before reset", "member", id)
	return id, nil
}
