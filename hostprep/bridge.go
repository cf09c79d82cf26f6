package hostprep

import (
	"context"
	"fmt"
	"net/netip"
)

// Names and markers of the network objects knode owns.
const (
	BridgeName = "cbr0"
	VXLANName  = "knode.vxlan"
	// RouteProto marks knode's routes, so that updates and reset find exactly
	// the routes knode added.
	RouteProto = 75
	// vxlanOverhead is what VXLAN encapsulation adds to each IPv4 packet.
	vxlanOverhead = 50
)

func bridgePhase() Phase {
	return Phase{
		Name:        PhaseBridge,
		Description: "create bridge " + BridgeName + " holding the first address of the node's pod CIDR",
		Plan:        planBridge,
		PlanReset:   planBridgeReset,
	}
}

// netInfo is what the network phases derive from the host before planning.
type netInfo struct {
	mode      NetworkMode
	uplink    Link
	uplinkNet []netip.Prefix // the uplink's IPv4 prefixes
}

// podMTU is the MTU of cbr0 and of pod interfaces.
func (n netInfo) podMTU() int {
	if n.mode == VXLAN {
		return n.uplink.MTU - vxlanOverhead
	}
	return n.uplink.MTU
}

// onUplink reports whether a is on a subnet directly connected to the uplink.
func (n netInfo) onUplink(a netip.Addr) bool {
	for _, p := range n.uplinkNet {
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// inspectNet finds the uplink and resolves the network mode.
func inspectNet(e *Env) (netInfo, error) {
	s := e.Spec
	addrs, err := e.Host.Net.Addrs("")
	if err != nil {
		return netInfo{}, fmt.Errorf("list addresses: %w", err)
	}
	var n netInfo
	name := s.Uplink
	if name == "" {
		for _, a := range addrs {
			if a.Prefix.Addr() == s.Self.Address {
				name = a.Dev
			}
		}
		if name == "" {
			return netInfo{}, fmt.Errorf("node address %s is on no interface of this host", s.Self.Address)
		}
	}
	if n.uplink, err = e.Host.Net.LinkByName(name); err != nil {
		return netInfo{}, fmt.Errorf("uplink %s: %w", name, err)
	}
	for _, a := range addrs {
		if a.Dev == name {
			n.uplinkNet = append(n.uplinkNet, a.Prefix)
		}
	}
	n.mode = s.Cluster.Network
	if n.mode == Auto {
		n.mode = Routed
		for _, p := range s.Peers {
			if !n.onUplink(p.Address) {
				n.mode = VXLAN
			}
		}
	}
	return n, nil
}

// ResolveNetwork returns the mode Auto resolves to on h: Routed when every
// peer is on a subnet of the uplink, VXLAN otherwise. Other modes are
// returned as they are.
func ResolveNetwork(ctx context.Context, s *Spec, h *Host) (NetworkMode, error) {
	spec := s.withDefaults()
	n, err := inspectNet(&Env{Spec: &spec, Host: h})
	return n.mode, err
}

// ownedRoute reports whether knode made r, or the kernel made it for one of
// knode's devices.
func ownedRoute(r Route) bool {
	return r.Proto == RouteProto || r.Dev == BridgeName || r.Dev == VXLANName
}

// checkPodRangeFree fails if the host already routes part of the pod range
// somewhere knode does not own: pod traffic would go the wrong way.
func checkPodRangeFree(e *Env) error {
	routes, err := e.Host.Net.Routes()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	pods := e.Spec.Cluster.PodCIDR
	for _, r := range routes {
		if ownedRoute(r) || r.Dst.Bits() < pods.Bits() || !r.Dst.Overlaps(pods) {
			continue
		}
		return fmt.Errorf("pod range %s conflicts with existing host route %s: choose another pod range or remove the route", pods, r)
	}
	return nil
}

func planBridge(ctx context.Context, e *Env) ([]Change, error) {
	if err := checkPodRangeFree(e); err != nil {
		return nil, err
	}
	n, err := inspectNet(e)
	if err != nil {
		return nil, err
	}
	addr := e.Spec.Self.BridgeAddr()
	mtu := n.podMTU()
	nl := e.Host.Net
	cur, err := nl.LinkByName(BridgeName)
	var cs []Change
	switch {
	case notExist(err):
		cs = append(cs, change(fmt.Sprintf("create bridge %s mtu %d", BridgeName, mtu), func(context.Context) error {
			if err := nl.AddLink(Link{Name: BridgeName, Kind: "bridge", MTU: mtu}); err != nil {
				return fmt.Errorf("create bridge %s: %w", BridgeName, err)
			}
			return nil
		}))
		cur = Link{Name: BridgeName, Kind: "bridge", MTU: mtu}
	case err != nil:
		return nil, fmt.Errorf("look up %s: %w", BridgeName, err)
	case cur.Kind != "bridge":
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge: remove it first", BridgeName, cur.Kind)
	}
	if cur.MTU != mtu {
		cs = append(cs, change(fmt.Sprintf("set %s mtu %d", BridgeName, mtu), func(context.Context) error {
			if err := nl.SetMTU(BridgeName, mtu); err != nil {
				return fmt.Errorf("set %s mtu %d: %w", BridgeName, mtu, err)
			}
			return nil
		}))
	}
	have, err := nl.Addrs(BridgeName)
	if err != nil && !notExist(err) {
		return nil, fmt.Errorf("list addresses of %s: %w", BridgeName, err)
	}
	found := false
	for _, a := range have {
		if a.Prefix == addr {
			found = true
			continue
		}
		cs = append(cs, change(fmt.Sprintf("remove stale address %s from %s", a.Prefix, BridgeName), func(context.Context) error {
			if err := nl.DelAddr(a); err != nil {
				return fmt.Errorf("remove address %s from %s: %w", a.Prefix, BridgeName, err)
			}
			return nil
		}))
	}
	if !found {
		cs = append(cs, change(fmt.Sprintf("add address %s to %s", addr, BridgeName), func(context.Context) error {
			if err := nl.AddAddr(Addr{Dev: BridgeName, Prefix: addr}); err != nil {
				return fmt.Errorf("add address %s to %s: %w", addr, BridgeName, err)
			}
			return nil
		}))
	}
	if !cur.Up {
		cs = append(cs, setUp(nl, BridgeName))
	}
	return cs, nil
}

func setUp(nl Netlink, name string) Change {
	return change("set "+name+" up", func(context.Context) error {
		if err := nl.SetUp(name); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
		return nil
	})
}

// planDelLink returns a change deleting the link if it exists.
func planDelLink(e *Env, name string) ([]Change, error) {
	_, err := e.Host.Net.LinkByName(name)
	if notExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	return []Change{change("delete link "+name, func(context.Context) error {
		if err := e.Host.Net.DelLink(name); err != nil && !notExist(err) {
			return fmt.Errorf("delete link %s: %w", name, err)
		}
		return nil
	})}, nil
}

func planBridgeReset(ctx context.Context, e *Env) ([]Change, error) {
	return planDelLink(e, BridgeName)
}

// String renders a route as `ip route` would.
func (r Route) String() string {
	s := r.Dst.String()
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	switch r.Proto {
	case RouteProto:
		s += " proto knode"
	case 2:
		s += " proto kernel"
	}
	if r.Onlink {
		s += " onlink"
	}
	return s
}
