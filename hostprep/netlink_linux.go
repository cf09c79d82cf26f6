//go:build linux

package hostprep

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linuxNetlink implements Netlink with vishvananda/netlink.
type linuxNetlink struct{ h *netlink.Handle }

// NewLinuxNetlink returns a Netlink working through h, which decides the
// network namespace (netlink.NewHandleAt for another one).
func NewLinuxNetlink(h *netlink.Handle) Netlink { return &linuxNetlink{h: h} }

func (n *linuxNetlink) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, fmt.Errorf("link %s: %w", name, ErrNotExist)
	}
	return l, err
}

func toLink(l netlink.Link) Link {
	a := l.Attrs()
	out := Link{Name: a.Name, Kind: l.Type(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0, MAC: a.HardwareAddr}
	if out.Kind != "bridge" && out.Kind != "vxlan" && out.Kind != "veth" && out.Kind != "dummy" {
		out.Kind = "device"
	}
	if v, ok := l.(*netlink.Vxlan); ok {
		local, _ := netip.AddrFromSlice(v.SrcAddr.To4())
		out.VXLAN = &VXLANAttrs{VNI: v.VxlanId, Port: v.Port, Local: local}
	}
	return out
}

// Links implements Netlink.
func (n *linuxNetlink) Links() ([]Link, error) {
	ls, err := n.h.LinkList()
	if err != nil {
		return nil, err
	}
	out := make([]Link, len(ls))
	for i, l := range ls {
		out[i] = n.withParent(l)
	}
	return out, nil
}

// withParent converts l, naming a VXLAN device's underlay.
func (n *linuxNetlink) withParent(l netlink.Link) Link {
	out := toLink(l)
	if v, ok := l.(*netlink.Vxlan); ok && v.VtepDevIndex > 0 {
		if p, err := n.h.LinkByIndex(v.VtepDevIndex); err == nil {
			out.VXLAN.Parent = p.Attrs().Name
		}
	}
	return out
}

// LinkByName implements Netlink.
func (n *linuxNetlink) LinkByName(name string) (Link, error) {
	l, err := n.link(name)
	if err != nil {
		return Link{}, err
	}
	return n.withParent(l), nil
}

// AddLink implements Netlink.
func (n *linuxNetlink) AddLink(l Link) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.HardwareAddr = l.Name, l.MTU, l.MAC
	switch l.Kind {
	case "bridge":
		return n.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
	case "vxlan":
		if l.VXLAN == nil {
			return fmt.Errorf("vxlan %s: no settings", l.Name)
		}
		parent, err := n.link(l.VXLAN.Parent)
		if err != nil {
			return err
		}
		return n.h.LinkAdd(&netlink.Vxlan{
			LinkAttrs: attrs, VxlanId: l.VXLAN.VNI, VtepDevIndex: parent.Attrs().Index,
			SrcAddr: net.IP(l.VXLAN.Local.AsSlice()), Port: l.VXLAN.Port, Learning: false,
		})
	}
	return fmt.Errorf("create %s: unsupported kind %q", l.Name, l.Kind)
}

// DelLink implements Netlink.
func (n *linuxNetlink) DelLink(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.LinkDel(l)
}

// SetMTU implements Netlink.
func (n *linuxNetlink) SetMTU(name string, mtu int) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.LinkSetMTU(l, mtu)
}

// SetUp implements Netlink.
func (n *linuxNetlink) SetUp(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.LinkSetUp(l)
}

// Addrs implements Netlink.
func (n *linuxNetlink) Addrs(dev string) ([]Addr, error) {
	var l netlink.Link
	if dev != "" {
		var err error
		if l, err = n.link(dev); err != nil {
			return nil, err
		}
	}
	as, err := n.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	names := n.names()
	var out []Addr
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, Addr{Dev: names[a.LinkIndex], Prefix: netip.PrefixFrom(ip, ones)})
	}
	return out, nil
}

// names maps link indexes to names.
func (n *linuxNetlink) names() map[int]string {
	m := map[int]string{}
	ls, _ := n.h.LinkList()
	for _, l := range ls {
		m[l.Attrs().Index] = l.Attrs().Name
	}
	return m
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddAddr implements Netlink.
func (n *linuxNetlink) AddAddr(a Addr) error {
	l, err := n.link(a.Dev)
	if err != nil {
		return err
	}
	return n.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(a.Prefix)})
}

// DelAddr implements Netlink.
func (n *linuxNetlink) DelAddr(a Addr) error {
	l, err := n.link(a.Dev)
	if err != nil {
		return err
	}
	return n.h.AddrDel(l, &netlink.Addr{IPNet: ipNet(a.Prefix)})
}

// Routes implements Netlink.
func (n *linuxNetlink) Routes() ([]Route, error) {
	rs, err := n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	names := n.names()
	var out []Route
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		x := Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: names[r.LinkIndex], Proto: int(r.Protocol), Onlink: r.Flags&unix.RTNH_F_ONLINK != 0}
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP.To4())
			ones, _ := r.Dst.Mask.Size()
			x.Dst = netip.PrefixFrom(ip, ones)
		}
		if r.Gw != nil {
			x.Gw, _ = netip.AddrFromSlice(r.Gw.To4())
		}
		out = append(out, x)
	}
	return out, nil
}

func (n *linuxNetlink) route(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Protocol: netlink.RouteProtocol(r.Proto), Table: unix.RT_TABLE_MAIN}
	if r.Gw.IsValid() {
		nr.Gw = net.IP(r.Gw.AsSlice())
	}
	if r.Dev != "" {
		l, err := n.link(r.Dev)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.Onlink {
		nr.Flags |= unix.RTNH_F_ONLINK
	}
	return nr, nil
}

// AddRoute implements Netlink.
func (n *linuxNetlink) AddRoute(r Route) error {
	nr, err := n.route(r)
	if err != nil {
		return err
	}
	return n.h.RouteAdd(nr)
}

// DelRoute implements Netlink.
func (n *linuxNetlink) DelRoute(r Route) error {
	nr, err := n.route(r)
	if err != nil {
		return err
	}
	err = n.h.RouteDel(nr)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("route %s: %w", r, ErrNotExist)
	}
	return err
}

// Neighs implements Netlink: permanent IPv4 neighbours of dev.
func (n *linuxNetlink) Neighs(dev string) ([]Neigh, error) {
	l, err := n.link(dev)
	if err != nil {
		return nil, err
	}
	ns, err := n.h.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []Neigh
	for _, x := range ns {
		ip, ok := netip.AddrFromSlice(x.IP.To4())
		if ok && x.State&netlink.NUD_PERMANENT != 0 {
			out = append(out, Neigh{Dev: dev, IP: ip, MAC: x.HardwareAddr})
		}
	}
	return out, nil
}

func (n *linuxNetlink) neigh(dev string, family int, ip netip.Addr, mac net.HardwareAddr) (*netlink.Neigh, error) {
	l, err := n.link(dev)
	if err != nil {
		return nil, err
	}
	x := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT, IP: net.IP(ip.AsSlice()), HardwareAddr: mac}
	if family == unix.AF_BRIDGE {
		x.Flags = netlink.NTF_SELF
	}
	return x, nil
}

// SetNeigh implements Netlink.
func (n *linuxNetlink) SetNeigh(x Neigh) error {
	nx, err := n.neigh(x.Dev, netlink.FAMILY_V4, x.IP, x.MAC)
	if err != nil {
		return err
	}
	return n.h.NeighSet(nx)
}

// DelNeigh implements Netlink.
func (n *linuxNetlink) DelNeigh(x Neigh) error {
	nx, err := n.neigh(x.Dev, netlink.FAMILY_V4, x.IP, x.MAC)
	if err != nil {
		return err
	}
	return n.h.NeighDel(nx)
}

// FDBs implements Netlink: the entries of dev that name a remote VTEP.
func (n *linuxNetlink) FDBs(dev string) ([]FDB, error) {
	l, err := n.link(dev)
	if err != nil {
		return nil, err
	}
	ns, err := n.h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	var out []FDB
	for _, x := range ns {
		dst, ok := netip.AddrFromSlice(x.IP.To4())
		if ok && x.LinkIndex == l.Attrs().Index {
			out = append(out, FDB{Dev: dev, MAC: x.HardwareAddr, Dst: dst})
		}
	}
	return out, nil
}

// AddFDB implements Netlink.
func (n *linuxNetlink) AddFDB(f FDB) error {
	nx, err := n.neigh(f.Dev, unix.AF_BRIDGE, f.Dst, f.MAC)
	if err != nil {
		return err
	}
	return n.h.NeighAppend(nx)
}

// DelFDB implements Netlink.
func (n *linuxNetlink) DelFDB(f FDB) error {
	nx, err := n.neigh(f.Dev, unix.AF_BRIDGE, f.Dst, f.MAC)
	if err != nil {
		return err
	}
	return n.h.NeighDel(nx)
}
