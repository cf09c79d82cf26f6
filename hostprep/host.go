package hostprep

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"time"
)

// Host gathers the narrow interfaces through which phases touch the machine.
// NewLinuxHost returns the real one; hostpreptest.New, for tests, one whose
// state renders as text.
type Host struct {
	Net      Netlink
	IPTables IPTables
	// IP6Tables, when not nil, is the IPv6 firewall: knode adds nothing
	// there, but the kubelet and kube-proxy do, and reset removes that.
	IP6Tables IPTables
	Sysctl    Sysctl
	Modules   Modules
	Files     Files
	Systemd   Systemd
	Exec      Commander
	Probe     Probe
	// Etcd reaches the cluster's running etcd, for a master that joins it.
	Etcd Etcd
	// Pods reaches the containers of the kubelet's pods (through the CRI).
	Pods Pods
}

// Pods reaches pods and their containers through the container runtime's
// CRI service, the API the kubelet itself uses.
type Pods interface {
	// RestartContainers stops every running container of the pod
	// namespace/name, keeping the pod: the kubelet starts them again, and
	// they read their files anew. It returns how many it stopped.
	RestartContainers(ctx context.Context, namespace, name string) (int, error)
	// RemoveAll stops and removes every pod sandbox and container the
	// runtime's CRI holds (its network torn down by the runtime), as
	// kubeadm reset does; it returns how many sandboxes and containers it
	// removed. ErrNoRuntime (wrapped): no runtime answers, so none runs.
	RemoveAll(ctx context.Context) (int, error)
	// RemoveIn stops and removes the pod sandboxes whose address is in
	// subnet (a moved node's old one), their containers with them: the
	// kubelet creates them again, in the node's new subnet. It returns the
	// pods removed, as "namespace/name".
	RemoveIn(ctx context.Context, subnet netip.Prefix) ([]string, error)
	// StopControlPlane stops this node's scheduler and controller-manager,
	// then its apiserver (etcd stays), and returns how many containers it
	// stopped: none on a worker.
	StopControlPlane(ctx context.Context) (int, error)
}

// ErrNoRuntime is returned (wrapped) when no container runtime answers.
var ErrNoRuntime = errors.New("container runtime not reachable")

// ErrNotExist is returned (wrapped) when a link, route or entry is absent.
var ErrNotExist = fs.ErrNotExist

// Link is a network interface.
type Link struct {
	Name string
	// Kind is "bridge", "vxlan", "veth", "dummy", or "device" for anything else.
	Kind string
	MTU  int
	Up   bool
	MAC  net.HardwareAddr
	// VXLAN is set for Kind "vxlan".
	VXLAN *VXLANAttrs
}

// VXLANAttrs are the settings of a VXLAN device.
type VXLANAttrs struct {
	VNI   int
	Port  int
	Local netip.Addr
	// Parent is the underlay interface.
	Parent string
}

// Addr is an interface address.
type Addr struct {
	Dev    string
	Prefix netip.Prefix
}

// Route is an IPv4 route in the main table.
type Route struct {
	Dst netip.Prefix
	// Gw is invalid for directly connected routes.
	Gw  netip.Addr
	Dev string
	// Proto is the route's protocol number; knode's routes carry RouteProto.
	Proto int
	// Onlink says the gateway is reachable on Dev without a connected route.
	Onlink bool
}

// Neigh is a permanent neighbour (ARP) entry.
type Neigh struct {
	Dev string
	IP  netip.Addr
	MAC net.HardwareAddr
}

// FDB is a permanent bridge forwarding entry on a VXLAN device: frames for MAC
// are sent to the VTEP at Dst.
type FDB struct {
	Dev string
	MAC net.HardwareAddr
	Dst netip.Addr
}

// Netlink is the part of the kernel's network configuration hostprep uses.
type Netlink interface {
	Links() ([]Link, error)
	// LinkByName returns an error wrapping ErrNotExist when there is none.
	LinkByName(name string) (Link, error)
	// AddLink creates a bridge or vxlan link, down.
	AddLink(l Link) error
	DelLink(name string) error
	SetMTU(name string, mtu int) error
	SetUp(name string) error
	// Addrs lists IPv4 addresses; dev "" means every interface.
	Addrs(dev string) ([]Addr, error)
	AddAddr(a Addr) error
	DelAddr(a Addr) error
	// Routes lists the IPv4 unicast routes of the main table.
	Routes() ([]Route, error)
	AddRoute(r Route) error
	DelRoute(r Route) error
	Neighs(dev string) ([]Neigh, error)
	SetNeigh(n Neigh) error
	DelNeigh(n Neigh) error
	FDBs(dev string) ([]FDB, error)
	AddFDB(f FDB) error
	DelFDB(f FDB) error
}

// IPTables manipulates IPv4 iptables rules. Rules are given as argument
// lists, as go-iptables takes them.
type IPTables interface {
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	// ClearChain empties a chain.
	ClearChain(table, chain string) error
	// DeleteChain flushes and deletes a chain.
	DeleteChain(table, chain string) error
	// Rules lists the chain's rules in iptables -S form, without the -N line.
	Rules(table, chain string) ([]string, error)
	// ListChains names the table's chains (built-in ones included); a table
	// the kernel does not have yields none.
	ListChains(table string) ([]string, error)
	Exists(table, chain string, rule ...string) (bool, error)
	Append(table, chain string, rule ...string) error
	Insert(table, chain string, pos int, rule ...string) error
	Delete(table, chain string, rule ...string) error
}

// Sysctl reads and writes kernel parameters by dotted name.
type Sysctl interface {
	Get(name string) (string, error)
	Set(name, value string) error
}

// Modules answers for kernel features and loads modules.
type Modules interface {
	// Loaded reports whether the feature is usable now (built in or loaded).
	Loaded(name string) bool
	// Available reports whether it is loaded or can be loaded.
	Available(name string) bool
	Load(name string) error
}

// Files is the host filesystem, seen through absolute paths.
type Files interface {
	// ReadFile returns an error wrapping fs.ErrNotExist for a missing file.
	ReadFile(name string) ([]byte, error)
	// WriteFile replaces name atomically, creating parent directories.
	WriteFile(name string, data []byte, perm fs.FileMode) error
	// Remove deletes a file or an empty directory; a missing one is no error.
	Remove(name string) error
	// RemoveAll deletes a tree; a missing one is no error.
	RemoveAll(name string) error
	// MkdirAll creates a directory and its missing parents.
	MkdirAll(name string, perm fs.FileMode) error
	// Symlink replaces name atomically with a symlink to target, creating
	// parent directories; Readlink returns a symlink's target.
	Symlink(target, name string) error
	Readlink(name string) (string, error)
	// Exists reports whether name exists.
	Exists(name string) bool
	// Mode returns a file's permission bits; the error wraps fs.ErrNotExist
	// for a missing file.
	Mode(name string) (fs.FileMode, error)
	// Rename moves a file or a directory tree to newName, which must not
	// exist (an etcd data directory set aside for a restore).
	Rename(oldName, newName string) error
}

// Systemd controls units.
type Systemd interface {
	DaemonReload(ctx context.Context) error
	// Enable enables unit files by name (e.g. "kubelet.service").
	Enable(ctx context.Context, units ...string) error
	Disable(ctx context.Context, units ...string) error
	// Restart (re)starts a unit and waits for the job to finish.
	Restart(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	// State returns the unit's ActiveState ("active", "inactive", ...) and
	// whether it is enabled.
	State(ctx context.Context, unit string) (active string, enabled bool, err error)
}

// Commander runs host commands, such as `ctr images import`.
type Commander interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Etcd is the running etcd cluster, reached through its client API at
// endpoints (https://ADDR:2379) with the etcd CA and the apiserver's etcd
// client certificate under PKIDir. A call answers when any endpoint does.
type Etcd interface {
	// Members lists the members as the answering member knows them. The read
	// needs no quorum: once this node is added but has not started, only its
	// own etcd could complete one.
	Members(ctx context.Context, endpoints []string) ([]EtcdPeer, error)
	// AddMember adds a voting member listening on peerURL; one that has
	// that peer URL already counts as added.
	AddMember(ctx context.Context, endpoints []string, peerURL string) error
	// UpdatePeer moves the member named name (or the unstarted one at
	// oldPeerURL) to peerURL; one there already counts as moved.
	UpdatePeer(ctx context.Context, endpoints []string, name, oldPeerURL, peerURL string) error
}

// EtcdPeer is one etcd member as etcd lists it.
type EtcdPeer struct {
	// Name is empty until the member has started once.
	Name     string
	PeerURLs []string
}

// Probe reports facts about the host for preflight checks and for choices
// such as the cgroup driver.
type Probe interface {
	Facts(ctx context.Context) (Facts, error)
	// PortInUse reports whether a TCP port is already bound.
	PortInUse(port int) bool
	// Answers reports whether something accepts connections on the unix
	// socket at path (a host path, under the host's root like Files').
	Answers(socket string) bool
	// Serving reports whether url answers 200 over HTTPS with a certificate
	// of the CA in caPEM (the local apiserver's /readyz).
	Serving(ctx context.Context, url string, caPEM []byte) bool
}

// Facts are what Probe found.
type Facts struct {
	EUID int
	// OS and Arch as Go names them.
	OS, Arch string
	// CgroupVersion is 1 or 2.
	CgroupVersion int
	SwapOn        bool
	// InContainer is true when the host itself runs in a container.
	InContainer bool
	// Systemd is true when systemd is PID 1.
	Systemd bool
	Now     time.Time
}

// notExist reports whether err means "absent".
func notExist(err error) bool { return errors.Is(err, ErrNotExist) }
