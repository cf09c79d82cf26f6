package agent

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
)

// A node's address changes (a new DHCP lease, a machine moved to another
// network) under a running agent:
//  1. watchAddress sees that the address gossip advertises left the host
//     and stops the agent with an error; knode.service starts it again, and
//     memberlist advertises the host's address as it is now;
//  2. the restarted agent claims its new address by letter (claim): the
//     allocator decides the node's place again at the new address, with the
//     same key, name, subnet and seat (roles.Plan; only the node's own
//     signed claim can move it);
//  3. followAddress, in the host loop, re-renders what holds the address
//     (hostprep.Readdress): a worker first gets its kubelet serving
//     certificate signed for the new address by a master;
//  4. the peers' routes, VXLAN entries and firewall follow the decision
//     (keepPeers), and every node-local apiserver endpoint a master's new
//     address (keepEndpoint).

// followAddress reconfigures the host when this node's decision binds
// another address than the one its host was configured for.
func (a *Agent) followAddress(ctx context.Context, spec hostprep.Spec, h *HostOptions) error {
	a.mu.Lock()
	applied := a.id.HostAddr
	a.mu.Unlock()
	if applied == spec.Self.Address {
		return nil
	}
	if applied.IsValid() {
		a.log.Warn("this node's address changed: configuring the host for the new one", "from", applied, "to", spec.Self.Address)
		ask, cancel := context.WithTimeout(ctx, renewAsk)
		creds, err := a.Credentials(ask) // a worker's serving certificate for the new address
		cancel()
		if err != nil {
			return fmt.Errorf("move %s from address %s to %s: %w", spec.Self.Name, applied, spec.Self.Address, err)
		}
		if spec, err = a.HostSpec(creds); err != nil {
			return err
		}
		cs, err := hostprep.Readdress(ctx, &spec, h.Host, applied, h.Out, a.log)
		if err != nil {
			return err
		}
		a.log.Info("host configured for the node's new address", "address", spec.Self.Address, "changes", len(cs))
	}
	// (A node set up before this field existed records its address as is.)
	return a.saveIdentity(func(id *datadir.Identity) { id.HostAddr = spec.Self.Address })
}

// watchAddress stops the agent once the address gossip advertises, which
// its host was configured for, has been missing from every interface for a whole
// interval (not one glance: an address being replaced). memberlist cannot
// change the address it advertises while it runs; the agent started again
// by knode.service takes the host's address as it is then. An address given
// with --advertise or --bind that left the host is forgotten first, with a
// warning, or the restarted agent would advertise it again.
func (a *Agent) watchAddress() {
	h := a.hostOpts()
	addr := a.g.LocalAddr().Addr()
	a.mu.Lock()
	configured := a.id.Host && a.id.HostAddr == addr // a host that never held it had no change
	a.mu.Unlock()
	if h == nil || h.Host == nil || !configured {
		return
	}
	have, err := h.Host.Net.Addrs("")
	if err != nil {
		a.log.Warn("list this host's addresses", "err", err)
		return
	}
	for _, x := range have {
		if x.Prefix.Addr() == addr {
			a.mu.Lock()
			a.addrGone = time.Time{}
			a.mu.Unlock()
			return
		}
	}
	a.mu.Lock()
	since := a.addrGone
	if since.IsZero() {
		a.addrGone = time.Now()
	}
	a.mu.Unlock()
	if since.IsZero() || time.Since(since) < a.interval() {
		return
	}
	if err := a.saveIdentity(func(id *datadir.Identity) { forgetAddr(id, addr) }); err != nil {
		a.log.Error("save node identity", "err", err)
	}
	err = fmt.Errorf("address %s, which gossip advertises, is on no interface of this host any more (the address changed): "+
		"the agent stops so that knode.service starts it again on the new one", addr)
	a.log.Error("this node's address changed", "err", err)
	a.mu.Lock()
	a.exitErr = err
	a.mu.Unlock()
	go a.Stop(false) // not from a goroutine Stop waits for
}

// forgetAddr drops addr from the identity's --advertise and --bind: the
// restarted agent lets memberlist pick the host's private address and binds
// every address on the same port.
func forgetAddr(id *datadir.Identity, addr netip.Addr) {
	if id.Advertise.Addr() == addr {
		id.Advertise = netip.AddrPort{}
	}
	if id.Bind.Addr() == addr {
		id.Bind = netip.AddrPortFrom(netip.IPv4Unspecified(), id.Bind.Port())
	}
}

// Err says why the agent stopped by itself (nil when it was stopped, or
// still runs).
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exitErr
}
