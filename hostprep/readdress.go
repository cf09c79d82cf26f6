package hostprep

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"knode.dev/knode/manifests"
)

// A node whose address changed (a new DHCP lease, a machine moved) claims the
// new one by letter; once its decision binds it, the agent calls Readdress,
// which re-renders everything on this host that holds the address:
//   - the PKI phase re-issues the leaves whose SANs name it (the kubelet's
//     serving certificate, which a worker gets from a master for the address
//     its decision binds; a master's apiserver and etcd certificates);
//   - the units phase writes the kubelet's --node-ip and restarts it;
//   - the pod network (the VXLAN device's local address) and the firewall's
//     member set;
//   - on a master, the static pods: the apiserver's --advertise-address, and
//     etcd: its member's peer URL is moved first through the other members
//     (etcd's client API: a quorum commits it while this member cannot
//     listen on the old address any more), then etcd.yaml is written with
//     the new URLs and the kubelet starts etcd again from its data.
//
// The peers follow by themselves: their routes, VXLAN entries and firewall
// rules are rebuilt from the decision (UpdatePeers), and the node-local
// apiserver endpoint takes a master's new address from gossip.

// readdressPhases hold this node's own address.
var readdressPhases = []string{PhasePodNetwork, PhaseIPTables, PhasePKI, PhaseStaticPods, PhaseUnits}

// Readdress reconfigures the host for s.Self.Address, which was old.
func Readdress(ctx context.Context, s *Spec, h *Host, old netip.Addr, out io.Writer, log *slog.Logger) ([]Change, error) {
	moved := *s
	moved.OldAddress = old
	r := &Runner{Only: readdressPhases, NoRollback: true, Out: out, Log: log}
	cs, err := r.Apply(ctx, &moved, h)
	if err != nil {
		return cs, fmt.Errorf("reconfigure %s from address %s to %s: %w", s.Self.Name, old, s.Self.Address, err)
	}
	return cs, nil
}

// planEtcdMove moves this master's etcd member to its new address and
// rewrites etcd.yaml with it. The member is moved through the other masters
// and, last, this one's loopback endpoint (a single master moves itself); the
// manifest is written even when no member answers (a single master's etcd
// that exited on its lost address comes back on the new one), and the move
// is then tried again on the next pass.
func planEtcdMove(e *Env, cp manifests.ControlPlane, manifest string, others []Node) ([]Change, error) {
	s := e.Spec
	oldURL := "https://" + netip.AddrPortFrom(s.OldAddress, 2380).String()
	newURL := "https://" + netip.AddrPortFrom(s.Self.Address, 2380).String()
	var endpoints []string
	for _, m := range others {
		endpoints = append(endpoints, "https://"+netip.AddrPortFrom(m.Address, 2379).String())
	}
	endpoints = append(endpoints, "https://127.0.0.1:2379")
	cp.EtcdClusterState = "existing" // ignored with data; never "new" here
	e.pendingWrites = append(e.pendingWrites, manifest)
	return []Change{change(fmt.Sprintf("move etcd member %s from %s to %s and write %s", s.Self.Name, oldURL, newURL, manifest), func(ctx context.Context) error {
		var moveErr error
		if e.Host.Etcd == nil {
			moveErr = fmt.Errorf("move etcd member %s to %s: this host has no etcd client", s.Self.Name, newURL)
		} else if err := e.Host.Etcd.UpdatePeer(ctx, endpoints, s.Self.Name, oldURL, newURL); err != nil {
			moveErr = fmt.Errorf("move etcd member %s to %s: %w", s.Self.Name, newURL, err)
		}
		if err := e.Host.Files.WriteFile(manifest, manifests.EtcdPod(cp), 0o600); err != nil {
			return err
		}
		return moveErr
	})}, nil
}
