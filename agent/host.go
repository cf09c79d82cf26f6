package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

// HostOptions connect an agent to the host it configures. Without them (nil)
// the agent only gossips, as with --dry-run --foreground and in tests.
type HostOptions struct {
	Host        *hostprep.Host
	Payload     hostprep.Payload
	Images      hostprep.Images
	KnodeBinary string
	// Out receives hostprep's progress lines.
	Out io.Writer
	// Health checks this node for its gossiped health summary (nil: none
	// is published).
	Health HealthProbe
	// KubeAPI makes the client of the cluster chores for a kubeconfig path
	// (nil: kubeapi.FromKubeconfig, the file on this host).
	KubeAPI func(kubeconfig string) (*kubeapi.Client, error)
}

// HostSpec is hostprep's view of this node, built from the agreed state: the
// cluster's ranges, this node's subnet and role, every other assigned node
// (dead ones too: their routes stay until they are removed), the trust
// material this node holds, and creds for workers (from Credentials).
func (a *Agent) HostSpec(creds map[string]*pki.Credential) (hostprep.Spec, error) {
	a.mu.Lock()
	sec := a.secrets
	a.mu.Unlock()
	spec, err := buildSpec(a.state.Snapshot(), a.id.Name, a.opts.Dir, sec, creds, a.hostOpts())
	spec.CertLifetime = a.opts.CertLifetime
	return spec, err
}

// SavedSpec builds the same spec offline, from what the data directory holds
// (for `knode phase` while knode.service owns the gossip port).
func SavedSpec(dir datadir.Dir, h *HostOptions) (hostprep.Spec, error) {
	var id datadir.Identity
	if err := dir.ReadJSON(datadir.NodeFile, &id); err != nil {
		return hostprep.Spec{}, fmt.Errorf("read node identity: %w", err)
	}
	st, err := LoadState(dir, nil, nil)
	if err != nil {
		return hostprep.Spec{}, fmt.Errorf("read saved state: %w", err)
	}
	snap := st.Snapshot()
	var sec *datadir.Secrets
	if s, ok, err := dir.LoadSecrets(); err != nil {
		return hostprep.Spec{}, err
	} else if ok {
		sec = &s
	}
	creds := map[string]*pki.Credential{}
	for _, kind := range credKinds() {
		if c, err := loadCred(dir, kind); err == nil {
			creds[kind] = c
		}
	}
	return buildSpec(snap, id.Name, dir, sec, creds, h)
}

func buildSpec(snap gossip.Snapshot, self string, dir datadir.Dir, sec *datadir.Secrets, creds map[string]*pki.Credential, h *HostOptions) (hostprep.Spec, error) {
	if snap.Cluster == nil {
		return hostprep.Spec{}, fmt.Errorf("no cluster identity known")
	}
	c := snap.Cluster.Cluster
	spec := hostprep.Spec{
		Cluster: hostprep.Cluster{Name: c.Name, PodCIDR: c.PodCIDR, ServiceCIDR: c.ServiceCIDR,
			NodeCIDRMask: c.NodeCIDRMask, Network: hostprep.NetworkMode(c.Network)},
		DataDir:   dir.Root,
		KnodeArgs: []string{"agent", "--data-dir", dir.Root},
	}
	if h != nil {
		spec.Payload, spec.Images, spec.KnodeBinary = h.Payload, h.Images, h.KnodeBinary
	}
	// Oldest decision first: while a subnet is held twice (a partition just
	// healed, the allocator has yet to move one holder) only the older
	// holder is routed, so one peer's state never blocks the others'.
	held := map[netip.Prefix]bool{}
	for _, as := range roles.ByAge(snap.Assignments) {
		if !as.Active() || snap.Nodes[as.Node].Removed || !as.Addr.Is4() || (held[as.PodCIDR] && as.Node != self) {
			continue
		}
		held[as.PodCIDR] = true
		node := hostprep.Node{Name: as.Node, Address: as.Addr, PodCIDR: as.PodCIDR, Master: as.Seat >= 0}
		if as.Node == self {
			spec.Self = node
		} else {
			spec.Peers = append(spec.Peers, node)
		}
	}
	slices.SortFunc(spec.Peers, func(a, b hostprep.Node) int { return cmp.Compare(a.Name, b.Name) })
	spec.Peers = slices.DeleteFunc(spec.Peers, func(p hostprep.Node) bool { return p.PodCIDR == spec.Self.PodCIDR })
	if spec.Self.Name == "" {
		return spec, fmt.Errorf("node %s has no pod subnet yet", self)
	}
	var keyPEM []byte
	if sec != nil {
		keyPEM = sec.CAKey
		if err := masterPKI(&spec.PKI, sec); err != nil {
			return spec, err
		}
	}
	ca, err := pki.LoadCA(snap.Cluster.CACert, keyPEM)
	if err != nil {
		return spec, err
	}
	spec.PKI.CA = ca
	spec.PKI.Kubelet, spec.PKI.KubeProxy, spec.PKI.KubeletServing = creds[credKubelet], creds[credKubeProxy], creds[credKubeletServing]
	return spec, nil
}

// SavedPeers lists the gossip addresses of every other node this node knew
// (from its saved state): any live one is enough to rejoin.
func SavedPeers(dir datadir.Dir, self string) []string {
	st, err := LoadState(dir, nil, nil)
	if err != nil {
		return nil
	}
	snap := st.Snapshot()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(snap.Assignments)) {
		if as := snap.Assignments[name]; name != self && as.Active() && !snap.Nodes[name].Removed {
			out = append(out, gossip.HostPort(as.Addr, as.Port))
		}
	}
	return out
}

// peerKey summarises what the pod network and the firewall depend on, to
// notice changes.
func peerKey(s hostprep.Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master=%v;", s.Self.Master) // the firewall lets masters reach etcd
	for _, p := range s.Peers {
		fmt.Fprintf(&b, "%s=%s@%s,%v;", p.Name, p.PodCIDR, p.Address, p.Master)
	}
	return b.String()
}

// kickHost asks the host loop to look at the pod network again.
func (a *Agent) kickHost() {
	select {
	case a.hostKick <- struct{}{}:
	default:
	}
}

// hostLoop owns the host: it reprograms the pod network when asked, in its
// own goroutine (a slow or failing host change never holds up gossip or
// decisions), and retries a failure with a growing delay, until Stop. It
// also renews the certificates when they are due (renewCerts).
func (a *Agent) hostLoop() {
	const minRetry, maxRetry = time.Second, time.Minute
	retry, renewRetry := minRetry, minRetry
	timer := time.NewTimer(retry)
	defer timer.Stop()
	renew := time.NewTimer(renewRetry)
	defer renew.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.hostKick:
		case <-timer.C:
		case <-renew.C:
			next, err := a.renewCerts(a.ctx)
			if err != nil {
				a.log.Error("renew certificates (will retry)", "in", renewRetry, "err", err)
				renew.Reset(renewRetry)
				renewRetry = min(2*renewRetry, maxRetry)
				continue
			}
			renewRetry = minRetry
			renew.Reset(a.renewWait(next))
			continue
		}
		if err := a.keepPeers(a.ctx); err != nil {
			a.log.Error("update the host's pod network (will retry)", "in", retry, "err", err)
			timer.Reset(retry)
			retry = min(2*retry, maxRetry)
			continue
		}
		retry = minRetry
	}
}

// keepPeers reprograms routes or overlay entries when the set of nodes or
// their subnets change (a node joins, is removed, or moves after a
// partition). It runs in the agent of a configured node.
func (a *Agent) keepPeers(ctx context.Context) error {
	h := a.hostOpts()
	if h == nil || h.Host == nil {
		return nil
	}
	a.hostMu.Lock()
	defer a.hostMu.Unlock()
	a.mu.Lock()
	last, restored, configured := a.lastPeers, a.restored, a.id.Host
	a.mu.Unlock()
	if !configured {
		return nil // init or join is still configuring the host: not ours to touch yet
	}
	if !restored { // the boot phases have not succeeded yet
		return a.restoreHost(ctx)
	}
	spec, err := a.HostSpec(nil)
	if err != nil {
		return nil // no subnet yet: nothing to route
	}
	if err := a.becomeMaster(ctx, spec, h); err != nil {
		return err
	}
	if err := a.followMove(ctx, spec, h); err != nil {
		return err
	}
	if err := a.followAddress(ctx, spec, h); err != nil {
		return err
	}
	// A restore to follow that cannot proceed yet (its restorer is down),
	// or a moved node's Node object still to be registered again, is
	// retried like any host failure, without holding up the routes.
	restoreErr := errors.Join(a.followEtcdRestore(ctx, spec, h), a.reregister(ctx, spec, h))
	key := peerKey(spec)
	if key == last {
		return restoreErr
	}
	if _, err := hostprep.UpdatePeers(ctx, &spec, h.Host, h.Out, a.log); err != nil {
		return errors.Join(fmt.Errorf("update pod network for peers: %w", err), restoreErr)
	}
	a.log.Info("pod network updated", "peers", len(spec.Peers))
	a.mu.Lock()
	a.lastPeers = key
	a.mu.Unlock()
	return restoreErr
}

// SetHost connects (or, with nil, disconnects) the host this agent keeps current.
func (a *Agent) SetHost(h *HostOptions) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.opts.Host = h
}

// Dir is the agent's data directory.
func (a *Agent) Dir() datadir.Dir { return a.opts.Dir }

func (a *Agent) hostOpts() *HostOptions {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.opts.Host
}

// MarkHost records in the data directory that this node's host is configured,
// so that the agent started by knode.service keeps it current.
func (a *Agent) MarkHost() error {
	as, _ := a.Assignment()
	return a.saveIdentity(func(id *datadir.Identity) { id.Host, id.HostPodCIDR, id.HostAddr = true, id.PodCIDR, as.Addr })
}

// bootPhases are re-applied when the agent starts on a configured node: a
// reboot (or a restarted node container) loses the bridge, routes and
// iptables rules, which live only in the kernel. Each phase changes nothing
// when the host is already in place.
var bootPhases = []string{hostprep.PhaseKernel, hostprep.PhaseBridge, hostprep.PhasePodNetwork, hostprep.PhaseCNI, hostprep.PhaseIPTables}

// RestoreHost re-applies the boot phases, unless the host loop did already.
func (a *Agent) RestoreHost(ctx context.Context) error {
	a.hostMu.Lock()
	defer a.hostMu.Unlock()
	a.mu.Lock()
	restored := a.restored
	a.mu.Unlock()
	if restored {
		return nil
	}
	return a.restoreHost(ctx)
}

// restoreHost re-applies the boot phases; the caller holds hostMu. A failure
// leaves the host as it is, to be retried by the host loop: never rolled
// back, as a rollback on a running node would delete cbr0 under its pods and
// the container runtime's own directories (/var/lib/cni) with them (seen on
// a rebooted VM).
func (a *Agent) restoreHost(ctx context.Context) error {
	h := a.hostOpts()
	if h == nil || h.Host == nil {
		return nil
	}
	spec, err := a.HostSpec(nil)
	if err != nil {
		return err
	}
	r := &hostprep.Runner{Only: bootPhases, NoRollback: true, Out: h.Out, Log: a.log}
	if _, err := r.Apply(ctx, &spec, h.Host); err != nil {
		return fmt.Errorf("restore the host's network: %w", err)
	}
	a.mu.Lock()
	a.lastPeers, a.restored = peerKey(spec), true
	a.mu.Unlock()
	return nil
}
