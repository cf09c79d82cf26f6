package hostprep

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
)

func podNetworkPhase() Phase {
	return Phase{
		Name:        PhasePodNetwork,
		Description: "route pod traffic to peers: a route per peer (routed) or a VXLAN overlay (vxlan)",
		Plan:        planPodNetwork,
		PlanReset:   planPodNetworkReset,
	}
}

// VTEPMAC is the MAC address of a node's VXLAN device, derived from its
// address so that every node knows every other node's without asking:
// 0e:6b followed by the four bytes of the IPv4 address (locally
// administered, unicast).
func VTEPMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x0e, 0x6b, b[0], b[1], b[2], b[3]}
}

// vtepIP is the next-hop address standing for a node's pod CIDR on the
// overlay: the CIDR's network address, as flannel does.
func vtepIP(pod netip.Prefix) netip.Addr { return pod.Masked().Addr() }

// desiredRoutes returns the routes knode wants for peers in mode m.
func desiredRoutes(peers []Node, m NetworkMode) []Route {
	var rs []Route
	for _, p := range peers {
		if m == VXLAN {
			rs = append(rs, Route{Dst: p.PodCIDR, Gw: vtepIP(p.PodCIDR), Dev: VXLANName, Proto: RouteProto, Onlink: true})
		} else {
			rs = append(rs, Route{Dst: p.PodCIDR, Gw: p.Address, Proto: RouteProto})
		}
	}
	return rs
}

func planPodNetwork(ctx context.Context, e *Env) ([]Change, error) {
	if err := checkPodRangeFree(e); err != nil {
		return nil, err
	}
	n, err := inspectNet(e)
	if err != nil {
		return nil, err
	}
	var cs []Change
	peers := e.Spec.Peers
	if n.mode == VXLAN {
		c, err := planVXLAN(e, n)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c...)
	} else {
		if peers, err = routablePeers(e, n); err != nil {
			return nil, err
		}
		c, err := planDelLink(e, VXLANName)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c...)
	}
	c, err := planRoutes(e, desiredRoutes(peers, n.mode))
	if err != nil {
		return nil, err
	}
	return append(cs, c...), nil
}

// routablePeers are the peers on a subnet of the uplink, which routed mode
// needs. One elsewhere gets no route (and a warning) rather than holding up
// every other peer's; when no peer is on it, this host is the one elsewhere,
// and that is an error.
func routablePeers(e *Env, n netInfo) ([]Node, error) {
	var ok, off []Node
	for _, p := range e.Spec.Peers {
		if n.onUplink(p.Address) {
			ok = append(ok, p)
		} else {
			off = append(off, p)
		}
	}
	if len(off) > 0 && len(ok) == 0 {
		p := off[0]
		return nil, fmt.Errorf("peer %s (%s) is not on a subnet of uplink %s: routed mode needs every node on one L2 segment; use vxlan", p.Name, p.Address, n.uplink.Name)
	}
	for _, p := range off {
		e.Log.Warn("peer not on this node's segment: no route to its pods (routed mode needs one L2 segment; use vxlan)",
			"peer", p.Name, "address", p.Address, "uplink", n.uplink.Name)
	}
	return ok, nil
}

// planRoutes removes knode's routes that are not wanted and adds the missing ones.
func planRoutes(e *Env, want []Route) ([]Change, error) {
	nl := e.Host.Net
	have, err := nl.Routes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	same := func(a, b Route) bool {
		return a.Dst == b.Dst && a.Gw == b.Gw && (a.Dev == "" || b.Dev == "" || a.Dev == b.Dev)
	}
	var cs []Change
	for _, r := range have {
		if r.Proto != RouteProto || slices.ContainsFunc(want, func(w Route) bool { return same(w, r) }) {
			continue
		}
		cs = append(cs, change("delete route "+r.String(), func(context.Context) error {
			if err := nl.DelRoute(r); err != nil && !notExist(err) {
				return fmt.Errorf("delete route %s: %w", r, err)
			}
			return nil
		}))
	}
	for _, w := range want {
		if slices.ContainsFunc(have, func(r Route) bool { return r.Proto == RouteProto && same(w, r) }) {
			continue
		}
		// A route to the same destination that knode does not own was
		// refused by checkPodRangeFree; one knode owns with another
		// gateway is deleted above, before this runs.
		cs = append(cs, change("add route "+w.String(), func(context.Context) error {
			if err := nl.AddRoute(w); err != nil {
				return fmt.Errorf("add route %s: %w", w, err)
			}
			return nil
		}))
	}
	return cs, nil
}

// planVXLAN plans the overlay device and its per-peer FDB and neighbour entries.
func planVXLAN(e *Env, n netInfo) ([]Change, error) {
	s, nl := e.Spec, e.Host.Net
	want := Link{
		Name: VXLANName, Kind: "vxlan", MTU: n.podMTU(), MAC: VTEPMAC(s.Self.Address),
		VXLAN: &VXLANAttrs{VNI: s.Cluster.VNI, Port: s.Cluster.VXLANPort, Local: s.Self.Address, Parent: n.uplink.Name},
	}
	var cs []Change
	cur, err := nl.LinkByName(VXLANName)
	switch {
	case err != nil && !notExist(err):
		return nil, fmt.Errorf("look up %s: %w", VXLANName, err)
	case err == nil && !sameVXLAN(cur, want):
		// Settings of a VXLAN device cannot be changed in place.
		cs = append(cs, change(fmt.Sprintf("delete link %s (settings changed)", VXLANName), func(context.Context) error {
			return nl.DelLink(VXLANName)
		}))
		err = ErrNotExist
	}
	if err != nil {
		cs = append(cs, change(fmt.Sprintf("create vxlan %s vni %d port %d local %s dev %s mtu %d mac %s", VXLANName, want.VXLAN.VNI, want.VXLAN.Port, want.VXLAN.Local, want.VXLAN.Parent, want.MTU, want.MAC), func(context.Context) error {
			if err := nl.AddLink(want); err != nil {
				return fmt.Errorf("create vxlan %s: %w", VXLANName, err)
			}
			return nil
		}), setUp(nl, VXLANName))
		cur = want
	} else if !cur.Up {
		cs = append(cs, setUp(nl, VXLANName))
	}
	fdbs, err := nl.FDBs(VXLANName)
	if err != nil && !notExist(err) {
		return nil, fmt.Errorf("list fdb of %s: %w", VXLANName, err)
	}
	neighs, err := nl.Neighs(VXLANName)
	if err != nil && !notExist(err) {
		return nil, fmt.Errorf("list neighbours of %s: %w", VXLANName, err)
	}
	var wantFDB []FDB
	var wantNeigh []Neigh
	for _, p := range s.Peers {
		wantFDB = append(wantFDB, FDB{Dev: VXLANName, MAC: VTEPMAC(p.Address), Dst: p.Address})
		wantNeigh = append(wantNeigh, Neigh{Dev: VXLANName, IP: vtepIP(p.PodCIDR), MAC: VTEPMAC(p.Address)})
	}
	sameFDB := func(a, b FDB) bool { return bytes.Equal(a.MAC, b.MAC) && a.Dst == b.Dst }
	sameNeigh := func(a, b Neigh) bool { return bytes.Equal(a.MAC, b.MAC) && a.IP == b.IP }
	for _, f := range fdbs {
		if !slices.ContainsFunc(wantFDB, func(w FDB) bool { return sameFDB(w, f) }) {
			cs = append(cs, change(fmt.Sprintf("delete fdb %s dst %s dev %s", f.MAC, f.Dst, VXLANName), func(context.Context) error {
				return nl.DelFDB(f)
			}))
		}
	}
	for _, x := range neighs {
		if !slices.ContainsFunc(wantNeigh, func(w Neigh) bool { return sameNeigh(w, x) }) {
			cs = append(cs, change(fmt.Sprintf("delete neighbour %s lladdr %s dev %s", x.IP, x.MAC, VXLANName), func(context.Context) error {
				return nl.DelNeigh(x)
			}))
		}
	}
	for _, w := range wantFDB {
		if !slices.ContainsFunc(fdbs, func(f FDB) bool { return sameFDB(w, f) }) {
			cs = append(cs, change(fmt.Sprintf("add fdb %s dst %s dev %s", w.MAC, w.Dst, VXLANName), func(context.Context) error {
				if err := nl.AddFDB(w); err != nil {
					return fmt.Errorf("add fdb %s dst %s dev %s: %w", w.MAC, w.Dst, VXLANName, err)
				}
				return nil
			}))
		}
	}
	for _, w := range wantNeigh {
		if !slices.ContainsFunc(neighs, func(x Neigh) bool { return sameNeigh(w, x) }) {
			cs = append(cs, change(fmt.Sprintf("add neighbour %s lladdr %s dev %s", w.IP, w.MAC, VXLANName), func(context.Context) error {
				if err := nl.SetNeigh(w); err != nil {
					return fmt.Errorf("add neighbour %s lladdr %s dev %s: %w", w.IP, w.MAC, VXLANName, err)
				}
				return nil
			}))
		}
	}
	return cs, nil
}

func sameVXLAN(a, b Link) bool {
	return a.Kind == "vxlan" && a.VXLAN != nil && *a.VXLAN == *b.VXLAN && a.MTU == b.MTU && bytes.Equal(a.MAC, b.MAC)
}

func planPodNetworkReset(ctx context.Context, e *Env) ([]Change, error) {
	cs, err := planRoutes(e, nil)
	if err != nil {
		return nil, err
	}
	// Deleting the device drops its FDB and neighbour entries with it.
	c, err := planDelLink(e, VXLANName)
	return append(cs, c...), err
}

// UpdatePeers brings the pod network up to date with s.Peers: routes or
// overlay entries for new peers are added, those of departed peers removed,
// and the firewall's member addresses (firewall.go) follow.
// Call it whenever membership changes; it changes nothing when the host is
// current. A failure leaves the entries already updated in place.
func UpdatePeers(ctx context.Context, s *Spec, h *Host, out io.Writer, log *slog.Logger) ([]Change, error) {
	r := &Runner{Only: []string{PhasePodNetwork, PhaseIPTables}, NoRollback: true, Out: out, Log: log}
	return r.Apply(ctx, s, h)
}
