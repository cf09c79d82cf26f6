package agent

import (
	"context"
	"fmt"
	"path"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/roles"
)

// A master seat released by `knode remove` or `knode reset` goes to the
// oldest alive worker with no operator step: the allocator decides it
// (roles.Promotions), the masters seal the master keys to the new master
// (shareSecrets), and the new master's host loop adds the control plane to
// its host: master certificates, the control-plane image, its etcd member
// (added through the running members) and the static pods.

// promote publishes a decision for every free seat. It runs in the loop, on
// the allocator.
func (a *Agent) promote(alive map[string]bool) {
	key, ok := a.decisionKey()
	if !ok {
		return
	}
	for _, d := range roles.Promotions(a.state.Snapshot(), alive) {
		d.Version, d.By = a.state.Tick(), a.id.Name
		d.Sign(key)
		a.log.Info("decided", "for", d.Node, "podCIDR", d.PodCIDR, "seat", d.Seat, "promoted", true)
		if err := a.g.Decide(d); err != nil {
			a.log.Error("publish decision", "err", err)
			continue
		}
		a.sendDecision(d)
	}
}

// promotedPhases add a control plane to a configured worker's host.
var promotedPhases = []string{hostprep.PhasePKI, hostprep.PhaseImages, hostprep.PhaseStaticPods, hostprep.PhaseControllers}

// becomeMaster runs promotedPhases when this node holds a seat but its host
// has no control plane yet (or a previous attempt did not finish). It waits
// for the master keys first: the PKI phase signs with the CA key. It runs in
// the host loop, the one owner of host changes.
func (a *Agent) becomeMaster(ctx context.Context, spec hostprep.Spec, h *HostOptions) error {
	a.mu.Lock()
	pending := a.promoting
	a.mu.Unlock()
	apiserver := path.Join(hostprep.ManifestsDir, "kube-apiserver.yaml")
	if !spec.Self.Master || (!pending && h.Host.Files.Exists(apiserver)) {
		return nil
	}
	if !a.HasSecrets() {
		a.log.Debug("seated as a master; waiting for the master keys")
		return nil // the loop kicks the host again when they arrive
	}
	a.mu.Lock()
	a.promoting = true
	a.mu.Unlock()
	start := time.Now()
	a.log.Info("seated as a master: adding the control plane to this host")
	r := &hostprep.Runner{Only: promotedPhases, NoRollback: true, Out: h.Out, Log: a.log}
	if _, err := r.Apply(ctx, &spec, h.Host); err != nil {
		return fmt.Errorf("add the control plane to %s: %w", spec.Self.Name, err)
	}
	a.mu.Lock()
	a.promoting = false
	a.mu.Unlock()
	a.log.Info("control plane added", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
