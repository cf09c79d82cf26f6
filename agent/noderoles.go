package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"knode.dev/knode/gossip"
	"knode.dev/knode/kubeapi"
)

// Masters carry the node-role.kubernetes.io/control-plane label (kubectl's
// ROLES column) and, when the cluster was made with --taint-masters, the
// NoSchedule taint of that name. A kubelet may not set node-role labels on
// its own Node (NodeRestriction), so the allocator's chores do, with the
// admin credential, once each master's Node is registered.

// ControlPlaneRole is the label and taint key of masters.
const ControlPlaneRole = "node-role.kubernetes.io/control-plane"

// roleChores marks every seated master's Node; one not registered yet, or
// changed meanwhile, is tried again next round.
func (a *Agent) roleChores(ctx context.Context, api *kubeapi.Client, snap gossip.Snapshot) {
	var todo []string
	a.mu.Lock()
	for name, as := range snap.Assignments {
		if as.Active() && as.Seat >= 0 && !a.chores.roles[name] {
			todo = append(todo, name)
		}
	}
	a.mu.Unlock()
	for _, name := range todo {
		if err := markMaster(ctx, api, name, a.cluster.TaintMasters); err != nil {
			// Not registered yet, or changed since read: next round.
			level := slog.LevelDebug
			if !kubeapi.IsNotFound(err) && !kubeapi.IsConflict(err) {
				level = slog.LevelWarn
			}
			a.log.Log(ctx, level, "mark a master's Node (will retry)", "node", name, "problem", apiProblem(err), "err", err)
			continue
		}
		a.log.Info("marked the Node of a master", "node", name, "tainted", a.cluster.TaintMasters)
		a.mu.Lock()
		a.chores.roles[name] = true
		a.mu.Unlock()
	}
}

// markMaster labels node as a master and, with taint, adds the NoSchedule
// taint to those it has; it changes nothing already in place. The patch
// carries the resourceVersion read: a Node changed meanwhile is a conflict.
func markMaster(ctx context.Context, api *kubeapi.Client, node string, taint bool) error {
	n, err := api.GetNode(ctx, node)
	if err != nil {
		return err
	}
	patch := rolePatch(n, taint)
	if patch == nil {
		return nil
	}
	b, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode the role patch of Node %s: %w", node, err)
	}
	return api.Call(ctx, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(node), kubeapi.MergePatch, b, nil)
}

// rolePatch is the patch that marks n as a master, or nil when it is.
func rolePatch(n kubeapi.Node, taint bool) *kubeapi.NodePatch {
	_, labelled := n.Metadata.Labels[ControlPlaneRole]
	tainted := slices.ContainsFunc(n.Spec.Taints, func(t kubeapi.Taint) bool {
		return t.Key == ControlPlaneRole && t.Effect == "NoSchedule"
	})
	if labelled && (tainted || !taint) {
		return nil
	}
	p := &kubeapi.NodePatch{Metadata: kubeapi.ObjectMeta{Labels: map[string]string{ControlPlaneRole: ""}, ResourceVersion: n.Metadata.ResourceVersion}}
	if taint && !tainted {
		p.Spec = &kubeapi.NodePatchSpec{Taints: append(slices.Clone(n.Spec.Taints), kubeapi.Taint{Key: ControlPlaneRole, Effect: "NoSchedule"})}
	}
	return p
}
