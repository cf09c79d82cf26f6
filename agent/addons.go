package agent

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/roles"
)

// The allocator of a configured cluster (the first alive master) also keeps
// the cluster's objects in line with the agreed state, through the staged
// kubectl and the admin kubeconfig: the CoreDNS addon, each Node's podCIDR
// (knode owns CIDRs: the controller-manager runs --allocate-node-cidrs=false),
// and removing the Node object of a node that `knode reset` took out. Its
// first chore binds admin.conf's group to cluster-admin, with super-admin.conf
// (system:masters): every later one runs as the revocable admin.

// clusterChores runs in the background; done records what needs no repeat.
type clusterChores struct {
	busy    bool
	last    time.Time
	admin   bool // admin.conf's ClusterRoleBinding applied
	dns     bool
	patched map[string]string // node -> podCIDR set on its Node object
	deleted map[string]bool
	waiting map[string]time.Time // node -> first failed podCIDR patch (not registered yet)
	roles   map[string]bool      // masters whose Node is labelled (and tainted)
	down    time.Time            // first failed /readyz since the apiserver last answered
}

func (a *Agent) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	return a.kubectlAs(ctx, hostprep.AdminKubeconfig, stdin, args...)
}

func (a *Agent) kubectlAs(ctx context.Context, kubeconfig string, stdin []byte, args ...string) ([]byte, error) {
	h := a.hostOpts()
	bin := filepath.Join(h.Payload.BinDir, "kubectl")
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("kubectl %v: %w: %s", args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// choresDue starts a round of cluster chores when this node should do them.
func (a *Agent) choresDue(snap gossip.Snapshot, alive map[string]bool) {
	h := a.hostOpts()
	if h == nil || h.Host == nil || !a.HasSecrets() || roles.Allocator(snap, alive) != a.id.Name {
		return
	}
	a.mu.Lock()
	if !a.chores.pending(snap) || a.chores.busy || time.Since(a.chores.last) < 5*time.Second && !a.chores.fresh(snap) {
		a.mu.Unlock()
		return
	}
	a.chores.busy, a.chores.last = true, time.Now()
	a.mu.Unlock()
	a.spawn(func() {
		ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
		defer cancel()
		a.doChores(ctx, snap)
		a.mu.Lock()
		a.chores.busy = false
		a.mu.Unlock()
	})
}

// choresRetry is how often a round looks again for what it waits for (the
// apiserver, a Node its kubelet is registering) during the first choresQuick
// of the wait: the addon and each podCIDR land as soon as they can, which
// init and join wait for. A longer wait goes on at the rounds' 5 s pace.
const (
	choresRetry = 500 * time.Millisecond
	choresQuick = 20 * time.Second
)

func (a *Agent) doChores(ctx context.Context, snap gossip.Snapshot) {
	again := func(since time.Time) bool { // false: the round ends here
		if time.Since(since) > choresQuick {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(choresRetry):
			return true
		}
	}
	for {
		_, err := a.kubectl(ctx, nil, "get", "--raw", "/readyz")
		a.mu.Lock()
		if err == nil {
			a.chores.down = time.Time{}
		} else if a.chores.down.IsZero() {
			a.chores.down = time.Now()
		}
		down := a.chores.down
		a.mu.Unlock()
		if err == nil {
			break
		}
		if !again(down) {
			return // the apiserver is not up yet
		}
	}
	c := a.cluster
	a.mu.Lock()
	ch := &a.chores
	if ch.patched == nil {
		ch.patched, ch.deleted, ch.waiting, ch.roles = map[string]string{}, map[string]bool{}, map[string]time.Time{}, map[string]bool{}
	}
	dnsDone, adminDone := ch.dns, ch.admin
	a.mu.Unlock()
	if !adminDone {
		if _, err := a.kubectlAs(ctx, hostprep.SuperAdminKubeconfig, manifests.AdminBinding(), "apply", "-f", "-"); err != nil {
			a.log.Warn("bind admin.conf's group to cluster-admin", "err", err)
			return // every other chore runs as that admin: next round
		}
		a.log.Info("bound admin.conf's group to cluster-admin")
		a.mu.Lock()
		ch.admin = true
		a.mu.Unlock()
	}
	if !dnsDone {
		h := a.hostOpts()
		yaml := manifests.CoreDNSAddon(manifests.CoreDNS{Image: h.Images.CoreDNS, BinDir: hostprep.PayloadLink,
			ClusterIP: manifests.ClusterDNS(c.ServiceCIDR), Domain: hostprep.DefaultDomain, Replicas: 1})
		if _, err := a.kubectl(ctx, yaml, "apply", "-f", "-"); err != nil {
			a.log.Warn("apply CoreDNS", "err", err)
		} else {
			a.log.Info("applied the CoreDNS addon")
			a.mu.Lock()
			ch.dns = true
			a.mu.Unlock()
		}
	}
	start := time.Now()
	for retry := true; retry; snap = a.state.Snapshot() { // a retry also serves nodes assigned meanwhile
		retry = a.nodeChores(ctx, snap) && again(start)
	}
	a.roleChores(ctx, a.state.Snapshot())
}

// nodeChores sets each active node's podCIDR and deletes removed nodes' Node
// objects; it reports whether a node was not registered yet.
func (a *Agent) nodeChores(ctx context.Context, snap gossip.Snapshot) (unregistered bool) {
	ch := &a.chores
	for name, as := range snap.Assignments {
		a.mu.Lock()
		done, gone := ch.patched[name] == as.PodCIDR.String(), ch.deleted[name]
		a.mu.Unlock()
		switch {
		case as.Released && !gone:
			if _, err := a.kubectl(ctx, nil, "delete", "node", "--ignore-not-found", "--wait=false", "--", name); err == nil {
				a.log.Info("deleted the Node of a removed node", "node", name)
				a.mu.Lock()
				ch.deleted[name] = true
				// The name may come back (a reset host joining again, often
				// with the same subnet): its new Node needs the patch again.
				delete(ch.patched, name)
				delete(ch.waiting, name)
				a.mu.Unlock()
			}
		case as.Active() && !done:
			cidr := as.PodCIDR.String()
			patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, cidr, cidr)
			if _, err := a.kubectl(ctx, nil, "patch", "node", "--type", "merge", "-p", patch, "--", name); err != nil {
				// Its kubelet has not registered it yet (look again soon while
				// it is joining, at the round's pace after that), or it moved.
				if moved, merr := a.moveNode(ctx, name, cidr); merr != nil {
					a.log.Error("set the Node's podCIDR", "node", name, "podCIDR", cidr, "err", err, "then", merr)
				} else if moved {
					unregistered = true // its kubelet registers it again soon
				}
				a.mu.Lock()
				if _, ok := ch.waiting[name]; !ok {
					ch.waiting[name] = time.Now()
				}
				unregistered = unregistered || time.Since(ch.waiting[name]) < choresQuick
				a.mu.Unlock()
				continue
			}
			a.log.Info("set the Node's podCIDR", "node", name, "podCIDR", cidr)
			a.mu.Lock()
			ch.patched[name] = cidr
			delete(ch.deleted, name)
			delete(ch.waiting, name)
			a.mu.Unlock()
		}
	}
	return unregistered
}

// fresh reports whether a node waits for a podCIDR that no round has tried
// to set yet (a joiner): its round starts at once. Called with the agent's
// lock held.
func (ch *clusterChores) fresh(snap gossip.Snapshot) bool {
	for name, as := range snap.Assignments {
		if _, tried := ch.waiting[name]; as.Active() && ch.patched[name] != as.PodCIDR.String() && !tried {
			return true
		}
	}
	return false
}

// pending reports whether a round has anything left to do; at rest it has
// not, and no kubectl runs. Called with the agent's lock held.
func (ch *clusterChores) pending(snap gossip.Snapshot) bool {
	if !ch.dns || !ch.admin {
		return true
	}
	for name, as := range snap.Assignments {
		switch {
		case as.Released && !ch.deleted[name]:
			return true
		case as.Active() && ch.patched[name] != as.PodCIDR.String():
			return true
		case as.Active() && as.Seat >= 0 && !ch.roles[name]:
			return true
		}
	}
	return false
}
