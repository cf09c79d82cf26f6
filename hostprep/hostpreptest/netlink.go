package hostpreptest

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	"knode.dev/knode/hostprep"
)

// Netlink is an in-memory Netlink whose state renders as text. It models
// what hostprep relies on: connected routes follow addresses, gateways must
// be reachable, deleting a link drops everything on it.
type Netlink struct {
	mu     sync.Mutex
	links  map[string]hostprep.Link
	addrs  []hostprep.Addr
	routes []hostprep.Route
	neighs []hostprep.Neigh
	fdbs   []hostprep.FDB
	// Fail makes the named method (e.g. "AddRoute") return the error.
	Fail map[string]error
}

// NewNetlink returns a Netlink with only lo.
func NewNetlink() *Netlink {
	return &Netlink{links: map[string]hostprep.Link{"lo": {Name: "lo", Kind: "device", MTU: 65536, Up: true}}, Fail: map[string]error{}}
}

// AddUplink adds an up physical interface with an address, as a test fixture.
func (f *Netlink) AddUplink(name string, mtu int, addr netip.Prefix) {
	f.mu.Lock()
	f.links[name] = hostprep.Link{Name: name, Kind: "device", MTU: mtu, Up: true}
	f.mu.Unlock()
	if err := f.AddAddr(hostprep.Addr{Dev: name, Prefix: addr}); err != nil {
		panic(err)
	}
}

// AddHostRoute adds a route not owned by knode, as a test fixture.
func (f *Netlink) AddHostRoute(r hostprep.Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = append(f.routes, r)
}

func (f *Netlink) fail(op string) error { return f.Fail[op] }

// Links implements hostprep.Netlink.
func (f *Netlink) Links() ([]hostprep.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hostprep.Link
	for _, l := range f.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b hostprep.Link) int { return strings.Compare(a.Name, b.Name) })
	return out, f.fail("Links")
}

// LinkByName implements hostprep.Netlink.
func (f *Netlink) LinkByName(name string) (hostprep.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return hostprep.Link{}, fmt.Errorf("link %s: %w", name, hostprep.ErrNotExist)
	}
	return l, nil
}

// AddLink implements hostprep.Netlink.
func (f *Netlink) AddLink(l hostprep.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("AddLink"); err != nil {
		return err
	}
	if _, ok := f.links[l.Name]; ok {
		return syscall.EEXIST
	}
	if l.VXLAN != nil {
		v := *l.VXLAN
		l.VXLAN = &v
	}
	l.Up = false
	f.links[l.Name] = l
	return nil
}

// DelLink implements hostprep.Netlink.
func (f *Netlink) DelLink(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DelLink"); err != nil {
		return err
	}
	if _, ok := f.links[name]; !ok {
		return fmt.Errorf("link %s: %w", name, hostprep.ErrNotExist)
	}
	delete(f.links, name)
	f.addrs = slices.DeleteFunc(f.addrs, func(a hostprep.Addr) bool { return a.Dev == name })
	f.routes = slices.DeleteFunc(f.routes, func(r hostprep.Route) bool { return r.Dev == name })
	f.neighs = slices.DeleteFunc(f.neighs, func(n hostprep.Neigh) bool { return n.Dev == name })
	f.fdbs = slices.DeleteFunc(f.fdbs, func(x hostprep.FDB) bool { return x.Dev == name })
	return nil
}

func (f *Netlink) modify(name, op string, fn func(*hostprep.Link)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(op); err != nil {
		return err
	}
	l, ok := f.links[name]
	if !ok {
		return fmt.Errorf("link %s: %w", name, hostprep.ErrNotExist)
	}
	fn(&l)
	f.links[name] = l
	return nil
}

// SetMTU implements hostprep.Netlink.
func (f *Netlink) SetMTU(name string, mtu int) error {
	return f.modify(name, "SetMTU", func(l *hostprep.Link) { l.MTU = mtu })
}

// SetUp implements hostprep.Netlink.
func (f *Netlink) SetUp(name string) error {
	return f.modify(name, "SetUp", func(l *hostprep.Link) { l.Up = true })
}

// Addrs implements hostprep.Netlink.
func (f *Netlink) Addrs(dev string) ([]hostprep.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[dev]; dev != "" && !ok {
		return nil, fmt.Errorf("link %s: %w", dev, hostprep.ErrNotExist)
	}
	var out []hostprep.Addr
	for _, a := range f.addrs {
		if dev == "" || a.Dev == dev {
			out = append(out, a)
		}
	}
	return out, nil
}

// AddAddr implements hostprep.Netlink; it adds the connected route too.
func (f *Netlink) AddAddr(a hostprep.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("AddAddr"); err != nil {
		return err
	}
	if _, ok := f.links[a.Dev]; !ok {
		return fmt.Errorf("link %s: %w", a.Dev, hostprep.ErrNotExist)
	}
	if slices.Contains(f.addrs, a) {
		return syscall.EEXIST
	}
	f.addrs = append(f.addrs, a)
	if a.Prefix.Bits() < 32 {
		f.routes = append(f.routes, hostprep.Route{Dst: a.Prefix.Masked(), Dev: a.Dev, Proto: 2})
	}
	return nil
}

// DelAddr implements hostprep.Netlink.
func (f *Netlink) DelAddr(a hostprep.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DelAddr"); err != nil {
		return err
	}
	i := slices.Index(f.addrs, a)
	if i < 0 {
		return fmt.Errorf("address %s on %s: %w", a.Prefix, a.Dev, hostprep.ErrNotExist)
	}
	f.addrs = slices.Delete(f.addrs, i, i+1)
	f.routes = slices.DeleteFunc(f.routes, func(r hostprep.Route) bool {
		return r.Proto == 2 && r.Dev == a.Dev && r.Dst == a.Prefix.Masked()
	})
	return nil
}

// Routes implements hostprep.Netlink.
func (f *Netlink) Routes() ([]hostprep.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes), f.fail("Routes")
}

// AddRoute implements hostprep.Netlink. A gateway must be on a connected subnet
// unless the route is onlink, as the kernel requires.
func (f *Netlink) AddRoute(r hostprep.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("AddRoute"); err != nil {
		return err
	}
	for _, x := range f.routes {
		if x.Dst == r.Dst {
			return syscall.EEXIST
		}
	}
	if r.Gw.IsValid() && !r.Onlink {
		dev := ""
		for _, x := range f.routes {
			if x.Proto == 2 && x.Dst.Contains(r.Gw) {
				dev = x.Dev
			}
		}
		if dev == "" || (r.Dev != "" && r.Dev != dev) {
			return syscall.ENETUNREACH
		}
		r.Dev = dev
	}
	if _, ok := f.links[r.Dev]; !ok {
		return syscall.ENODEV
	}
	f.routes = append(f.routes, r)
	return nil
}

// DelRoute implements hostprep.Netlink.
func (f *Netlink) DelRoute(r hostprep.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("DelRoute"); err != nil {
		return err
	}
	n := len(f.routes)
	f.routes = slices.DeleteFunc(f.routes, func(x hostprep.Route) bool { return x.Dst == r.Dst && x.Gw == r.Gw })
	if len(f.routes) == n {
		return fmt.Errorf("route %s: %w", r, hostprep.ErrNotExist)
	}
	return nil
}

// Neighs implements hostprep.Netlink.
func (f *Netlink) Neighs(dev string) ([]hostprep.Neigh, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[dev]; !ok {
		return nil, fmt.Errorf("link %s: %w", dev, hostprep.ErrNotExist)
	}
	var out []hostprep.Neigh
	for _, n := range f.neighs {
		if n.Dev == dev {
			out = append(out, n)
		}
	}
	return out, nil
}

// SetNeigh implements hostprep.Netlink.
func (f *Netlink) SetNeigh(n hostprep.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("SetNeigh"); err != nil {
		return err
	}
	if _, ok := f.links[n.Dev]; !ok {
		return fmt.Errorf("link %s: %w", n.Dev, hostprep.ErrNotExist)
	}
	f.neighs = slices.DeleteFunc(f.neighs, func(x hostprep.Neigh) bool { return x.Dev == n.Dev && x.IP == n.IP })
	f.neighs = append(f.neighs, n)
	return nil
}

// DelNeigh implements hostprep.Netlink.
func (f *Netlink) DelNeigh(n hostprep.Neigh) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.neighs = slices.DeleteFunc(f.neighs, func(x hostprep.Neigh) bool { return x.Dev == n.Dev && x.IP == n.IP })
	return f.fail("DelNeigh")
}

// FDBs implements hostprep.Netlink.
func (f *Netlink) FDBs(dev string) ([]hostprep.FDB, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[dev]; !ok {
		return nil, fmt.Errorf("link %s: %w", dev, hostprep.ErrNotExist)
	}
	var out []hostprep.FDB
	for _, x := range f.fdbs {
		if x.Dev == dev {
			out = append(out, x)
		}
	}
	return out, nil
}

// AddFDB implements hostprep.Netlink.
func (f *Netlink) AddFDB(x hostprep.FDB) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("AddFDB"); err != nil {
		return err
	}
	if _, ok := f.links[x.Dev]; !ok {
		return fmt.Errorf("link %s: %w", x.Dev, hostprep.ErrNotExist)
	}
	f.fdbs = append(f.fdbs, x)
	return nil
}

// DelFDB implements hostprep.Netlink.
func (f *Netlink) DelFDB(x hostprep.FDB) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fdbs = slices.DeleteFunc(f.fdbs, func(y hostprep.FDB) bool { return y.Dev == x.Dev && bytes.Equal(y.MAC, x.MAC) && y.Dst == x.Dst })
	return f.fail("DelFDB")
}

// String renders the state one object per line, sorted, like ip(8) would.
func (f *Netlink) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	for _, l := range f.links {
		s := fmt.Sprintf("link %s %s mtu %d", l.Name, l.Kind, l.MTU)
		if l.Up {
			s += " up"
		}
		if l.MAC != nil {
			s += " mac " + l.MAC.String()
		}
		if v := l.VXLAN; v != nil {
			s += fmt.Sprintf(" vni %d port %d local %s dev %s", v.VNI, v.Port, v.Local, v.Parent)
		}
		lines = append(lines, s)
	}
	for _, a := range f.addrs {
		lines = append(lines, fmt.Sprintf("addr %s dev %s", a.Prefix, a.Dev))
	}
	for _, r := range f.routes {
		lines = append(lines, "route "+r.String())
	}
	for _, n := range f.neighs {
		lines = append(lines, fmt.Sprintf("neigh %s lladdr %s dev %s", n.IP, n.MAC, n.Dev))
	}
	for _, x := range f.fdbs {
		lines = append(lines, fmt.Sprintf("fdb %s dst %s dev %s", x.MAC, x.Dst, x.Dev))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
