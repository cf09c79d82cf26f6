package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/kubeapi"
)

// When a partition heals with one subnet given away on both sides, the
// allocator moves the younger holder to another (roles). The moved node's
// host follows, in its host loop:
//  1. followMove re-runs the phases that hold the node's own subnet: the
//     bridge (cbr0's address), CNI (the host-local range) and the units
//     (the kubelet's podCIDR; the kubelet restarts);
//  2. the allocator's chores delete its Node object, whose spec.podCIDR is
//     immutable (moveNode);
//  3. reregister restarts the kubelet once its Node is gone (a running
//     kubelet never registers again by itself), and the chores set the new
//     podCIDR on the Node it registers.
//
// Pods that ran on the node before the move, with addresses in the old
// subnet, are removed through the CRI in step 1 (hostprep.Pods.RemoveIn):
// the kubelet creates their sandboxes again in the new subnet.

// movePhases hold this node's own subnet.
var movePhases = []string{hostprep.PhaseBridge, hostprep.PhaseCNI, hostprep.PhaseUnits}

// reregisterEvery spaces the kubelet restarts while its Node is missing.
const reregisterEvery = 20 * time.Second

// followMove reconfigures the host when this node's subnet is no longer the
// one its host was configured for.
func (a *Agent) followMove(ctx context.Context, spec hostprep.Spec, h *HostOptions) error {
	a.mu.Lock()
	applied := a.id.HostPodCIDR
	a.mu.Unlock()
	if applied == spec.Self.PodCIDR {
		return nil
	}
	if applied.IsValid() {
		a.log.Warn("this node's pod subnet moved (a partition healed with it held twice): configuring the host for the new one",
			"from", applied, "to", spec.Self.PodCIDR)
		r := &hostprep.Runner{Only: movePhases, NoRollback: true, Out: h.Out, Log: a.log}
		if _, err := r.Apply(ctx, &spec, h.Host); err != nil {
			return fmt.Errorf("move %s's host from %s to %s: %w", spec.Self.Name, applied, spec.Self.PodCIDR, err)
		}
		// Its pods still hold addresses of the old subnet, which the
		// allocator may give to another node: the kubelet creates them
		// again in the new one. (The kubelet restarted above: the CNI range
		// it reads is the new one.)
		removed, err := h.Host.Pods.RemoveIn(ctx, applied)
		if err != nil {
			return fmt.Errorf("remove the pods of %s in its old subnet %s: %w", spec.Self.Name, applied, err)
		}
		a.log.Info("removed the pods in the old subnet: the kubelet creates them again in the new one", "pods", removed)
		a.mu.Lock()
		a.moved = time.Now().Add(-reregisterEvery) // look at the Node at once
		a.mu.Unlock()
	}
	// (A node set up before this field existed records its subnet as is.)
	return a.saveIdentity(func(id *datadir.Identity) { id.HostPodCIDR = spec.Self.PodCIDR })
}

// reregister restarts the kubelet of a moved node while its Node object is
// missing, until the Node is there with the new subnet. It reads the Node
// with the kubelet's own credential.
func (a *Agent) reregister(ctx context.Context, spec hostprep.Spec, h *HostOptions) error {
	a.mu.Lock()
	last := a.moved
	a.mu.Unlock()
	if last.IsZero() {
		return nil
	}
	api, err := kubeapi.FromKubeconfig(hostprep.KubeletKubeconfig)
	if err != nil {
		return err
	}
	defer api.Close()
	var n kubeapi.Node
	code, err := api.Get(ctx, "/api/v1/nodes/"+url.PathEscape(spec.Self.Name), &n)
	switch {
	case err == nil && code == http.StatusOK && n.Spec.PodCIDR == spec.Self.PodCIDR.String():
		a.log.Info("the moved node's Node is registered with its new subnet", "podCIDR", n.Spec.PodCIDR)
		a.mu.Lock()
		a.moved = time.Time{}
		a.mu.Unlock()
		return nil
	case code == http.StatusNotFound:
		if time.Since(last) < reregisterEvery {
			return fmt.Errorf("node %s: Node object missing; the kubelet was restarted %s ago", spec.Self.Name, time.Since(last).Round(time.Second))
		}
		a.log.Info("the moved node's Node was deleted: restarting the kubelet to register it again")
		a.mu.Lock()
		a.moved = time.Now()
		a.mu.Unlock()
		if err := h.Host.Systemd.Restart(ctx, "kubelet.service"); err != nil {
			return fmt.Errorf("restart the kubelet of %s to register its Node again: %w", spec.Self.Name, err)
		}
		return fmt.Errorf("node %s: kubelet restarted to register its Node with %s", spec.Self.Name, spec.Self.PodCIDR)
	case err != nil:
		return fmt.Errorf("read the Node of moved node %s: %w", spec.Self.Name, err)
	}
	return fmt.Errorf("node %s: its Node still has podCIDR %q, not %s (the allocator deletes it)", spec.Self.Name, n.Spec.PodCIDR, spec.Self.PodCIDR)
}

// moveNode looks at the Node of name after its podCIDR patch failed with
// patchErr: not registered yet (false, nil); registered with another
// podCIDR, which is immutable, so it is deleted for its kubelet to register
// it again (true, nil); anything else is an error, not taken for "not
// registered yet".
func (a *Agent) moveNode(ctx context.Context, api *kubeapi.Client, name, cidr string, patchErr error) (bool, error) {
	n, err := api.GetNode(ctx, name)
	switch {
	case kubeapi.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read Node %s: %w", name, err)
	case n.Spec.PodCIDR == "" || n.Spec.PodCIDR == cidr:
		return false, fmt.Errorf("set podCIDR %s on Node %s (registered with %q): %w", cidr, name, n.Spec.PodCIDR, patchErr)
	}
	if err := api.DeleteNode(ctx, name); err != nil && !kubeapi.IsNotFound(err) {
		return true, fmt.Errorf("delete Node %s (podCIDR %s, now %s): %w", name, n.Spec.PodCIDR, cidr, err)
	}
	a.log.Warn("deleted the Node of a moved node: its podCIDR is immutable; its kubelet registers it again", "node", name, "from", n.Spec.PodCIDR, "to", cidr)
	return true, nil
}
