package agent

import (
	"context"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/internal/poll"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
	"knode.dev/knode/roles"
)

// The allocator of a configured cluster (the first alive master) also keeps
// the cluster's objects in line with the agreed state, through kubeapi's
// typed client and the admin kubeconfig (addons by server-side apply as
// field manager "knode"): the CoreDNS addon, each Node's podCIDR
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

// kubeClient is a client of this cluster's apiserver with the credential
// of kubeconfig (a path on the host): HostOptions.KubeAPI when set, else
// the file read from the host's filesystem.
func (a *Agent) kubeClient(h *HostOptions, kubeconfig string) (*kubeapi.Client, error) {
	if h.KubeAPI != nil {
		return h.KubeAPI(kubeconfig)
	}
	return kubeapi.FromKubeconfig(kubeconfig)
}

// apiProblem names the kind of a failed apiserver call, for logs.
func apiProblem(err error) string {
	switch {
	case kubeapi.IsUnreachable(err):
		return "unreachable"
	case kubeapi.IsUnauthorized(err):
		return "unauthorised"
	case kubeapi.IsNotFound(err):
		return "not found"
	case kubeapi.IsConflict(err):
		return "conflict"
	case kubeapi.IsInvalid(err):
		return "invalid"
	}
	return "error"
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
	h := a.hostOpts()
	admin, err := a.kubeClient(h, hostprep.AdminKubeconfig)
	if err != nil {
		a.log.Warn("cluster chores: no admin credential", "err", err)
		return
	}
	defer admin.Close()
	if !a.apiReady(ctx, admin) {
		return // the apiserver is not up yet
	}
	a.mu.Lock()
	ch := &a.chores
	if ch.patched == nil {
		ch.patched, ch.deleted, ch.waiting, ch.roles = map[string]string{}, map[string]bool{}, map[string]time.Time{}, map[string]bool{}
	}
	dnsDone, adminDone := ch.dns, ch.admin
	a.mu.Unlock()
	if !adminDone {
		if err := a.bindAdmins(ctx, h); err != nil {
			a.log.Warn("bind admin.conf's group to cluster-admin", "problem", apiProblem(err), "err", err)
			return // every other chore runs as that admin: next round
		}
		a.log.Info("bound admin.conf's group to cluster-admin")
		a.mu.Lock()
		ch.admin = true
		a.mu.Unlock()
	}
	if !dnsDone {
		c := manifests.CoreDNS{Image: h.Images.CoreDNS, BinDir: hostprep.PayloadLink,
			ClusterIP: manifests.ClusterDNS(a.cluster.ServiceCIDR), Domain: hostprep.DefaultDomain, Replicas: 1}
		if err := applyAll(ctx, admin, manifests.CoreDNSObjects(c)); err != nil {
			a.log.Warn("apply the CoreDNS addon", "problem", apiProblem(err), "err", err)
		} else {
			a.log.Info("applied the CoreDNS addon")
			a.mu.Lock()
			ch.dns = true
			a.mu.Unlock()
		}
	}
	// Nodes not registered yet are looked at again every choresRetry for
	// choresQuick; a retry also serves nodes assigned meanwhile.
	quick, cancel := context.WithTimeout(ctx, choresQuick)
	defer cancel()
	poll.Until(quick, choresRetry, func() (bool, error) {
		unregistered := a.nodeChores(ctx, admin, snap)
		snap = a.state.Snapshot()
		return !unregistered, nil
	})
	a.roleChores(ctx, admin, a.state.Snapshot())
}

// apiReady reports whether the apiserver answers /readyz; within choresQuick
// of its first failure it looks again every choresRetry, later once a round.
func (a *Agent) apiReady(ctx context.Context, api *kubeapi.Client) bool {
	a.mu.Lock()
	down := a.chores.down
	a.mu.Unlock()
	if down.IsZero() {
		down = time.Now()
	}
	quick, cancel := context.WithDeadline(ctx, down.Add(choresQuick))
	defer cancel()
	var last error
	poll.Until(quick, choresRetry, func() (bool, error) {
		last = api.Readyz(ctx)
		a.mu.Lock()
		if last == nil {
			a.chores.down = time.Time{}
		} else if a.chores.down.IsZero() {
			a.chores.down = time.Now()
		}
		a.mu.Unlock()
		return last == nil, nil
	})
	if last != nil {
		a.log.Debug("cluster chores wait for the apiserver", "problem", apiProblem(last), "err", last)
	}
	return last == nil
}

// bindAdmins applies admin.conf's ClusterRoleBinding with super-admin.conf
// (system:masters): admin.conf has no rights before it exists.
func (a *Agent) bindAdmins(ctx context.Context, h *HostOptions) error {
	super, err := a.kubeClient(h, hostprep.SuperAdminKubeconfig)
	if err != nil {
		return err
	}
	defer super.Close()
	return super.Apply(ctx, manifests.AdminBindingObject())
}

// applyAll applies objs in order, stopping at the first failure.
func applyAll(ctx context.Context, api *kubeapi.Client, objs []manifests.Object) error {
	for _, o := range objs {
		if err := api.Apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// nodeChores sets each active node's podCIDR and deletes removed nodes' Node
// objects; it reports whether a node was not registered yet.
func (a *Agent) nodeChores(ctx context.Context, api *kubeapi.Client, snap gossip.Snapshot) (unregistered bool) {
	ch := &a.chores
	for name, as := range snap.Assignments {
		a.mu.Lock()
		done, gone := ch.patched[name] == as.PodCIDR.String(), ch.deleted[name]
		a.mu.Unlock()
		switch {
		case as.Released && !gone:
			err := api.DeleteNode(ctx, name)
			if err != nil && !kubeapi.IsNotFound(err) {
				a.log.Warn("delete the Node of a removed node (will retry)", "node", name, "problem", apiProblem(err), "err", err)
				continue
			}
			a.log.Info("deleted the Node of a removed node", "node", name, "existed", err == nil)
			a.mu.Lock()
			ch.deleted[name] = true
			// The name may come back (a reset host joining again, often
			// with the same subnet): its new Node needs the patch again.
			delete(ch.patched, name)
			delete(ch.waiting, name)
			a.mu.Unlock()
		case as.Active() && !done:
			cidr := as.PodCIDR.String()
			if err := api.SetPodCIDR(ctx, name, cidr); err != nil {
				// Not registered yet, or registered with another podCIDR
				// (it moved after a partition healed: the Node is deleted
				// and its kubelet registers it again).
				moved, merr := a.moveNode(ctx, api, name, cidr, err)
				if merr != nil {
					a.log.Warn("set the Node's podCIDR (will retry)", "node", name, "podCIDR", cidr, "problem", apiProblem(merr), "err", merr)
					continue
				}
				if moved {
					unregistered = true // its kubelet registers it again soon
				}
				// Its kubelet has not registered it yet: look again soon while
				// it is joining, at the round's pace after that.
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
// not, and no apiserver call is made. Called with the agent's lock held.
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
