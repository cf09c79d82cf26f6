package hostprep

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"time"

	"knode.dev/knode/pki"
)

// NetworkMode selects how pod traffic crosses between nodes.
type NetworkMode string

// Network modes.
const (
	// Routed installs a kernel route to each peer's pod CIDR via the peer's
	// address; every node must be on one L2 segment.
	Routed NetworkMode = "routed"
	// VXLAN builds an overlay device with one FDB and neighbour entry per peer.
	VXLAN NetworkMode = "vxlan"
	// Auto picks Routed when every peer is on a directly connected subnet,
	// VXLAN otherwise (see ResolveNetwork).
	Auto NetworkMode = "auto"
)

// Spec is everything hostprep needs to know to configure one node. The roles
// package fills it from the cluster's agreed state; hostprep keeps no state of
// its own beyond what it writes to the host.
type Spec struct {
	Cluster Cluster
	// Self is the node being configured.
	Self Node
	// Peers are the other live nodes of the cluster, masters included. A
	// node that holds no pod CIDR yet must be left out until it does.
	Peers []Node
	// DataDir is knode's data directory, as an absolute path on the host
	// (default /var/lib/knode). The payload is staged in DataDir/bin and its
	// image tarballs in DataDir/images unless Payload says otherwise.
	DataDir string
	Payload Payload
	Images  Images
	PKI     PKI
	// Uplink names the interface carrying node-to-node traffic. Empty means the
	// interface holding Self.Address.
	Uplink string
	// KnodeBinary is the path of the knode binary the knode.service unit runs
	// (default /usr/local/bin/knode), with KnodeArgs (default: agent).
	KnodeBinary string
	KnodeArgs   []string
	// CgroupDriver is "systemd" or "cgroupfs", used by both containerd and
	// the kubelet. Empty picks systemd when systemd is PID 1.
	CgroupDriver string
	// CertLifetime is the lifetime of the leaf certificates this node issues
	// (0: pki.LeafValidity, one year). Shorter only for tests of renewal.
	CertLifetime time.Duration
	// OldAddress is set only while the host follows a change of this node's
	// address (Readdress): the address it had, whose etcd member moves.
	OldAddress netip.Addr
}

// Cluster holds the cluster-wide settings every node agrees on.
type Cluster struct {
	Name string
	// PodCIDR is the whole pod range (default 10.10.0.0/16).
	PodCIDR netip.Prefix
	// ServiceCIDR is the service range (default 10.0.0.0/16).
	ServiceCIDR netip.Prefix
	// NodeCIDRMask is the prefix length of each node's share of PodCIDR (24).
	NodeCIDRMask int
	Network      NetworkMode
	// VNI and VXLANPort configure the overlay in VXLAN mode (defaults 1, 8472).
	VNI       int
	VXLANPort int
	// Domain is the cluster DNS domain (default cluster.local).
	Domain string
}

// Node is one member of the cluster as hostprep sees it.
type Node struct {
	Name    string
	Address netip.Addr
	// PodCIDR is the node's share of Cluster.PodCIDR.
	PodCIDR netip.Prefix
	// Master is true for nodes running the control plane.
	Master bool
}

// Payload locates the staged upstream components. Empty fields derive from
// Spec.DataDir.
type Payload struct {
	// BinDir holds kubelet, kube-proxy, containerd, runc, ctr, etcd, ...
	BinDir string
	// CNIBinDir holds the CNI plugins (default BinDir/cni).
	CNIBinDir string
	// ImagesDir holds OCI image tarballs to import into containerd.
	ImagesDir string
}

// Images names the container images the payload provides. The payload
// engineer chooses the names; hostprep only refers to them.
type Images struct {
	Pause string
	// ControlPlane runs kube-apiserver, kube-controller-manager and
	// kube-scheduler; ControlPlaneCommand is prepended to each component's
	// name and flags (empty: the component name is the command).
	ControlPlane        string
	ControlPlaneCommand []string
	// Etcd runs etcd (default: ControlPlane).
	Etcd    string
	CoreDNS string
	// Archives are the image tarballs to import into containerd.
	Archives []ImageArchive
}

// ImageArchive is one OCI image tarball of the payload. SHA256 identifies
// it, so an archive is imported once however often the phase runs.
type ImageArchive struct {
	Path   string
	SHA256 string
	// MasterOnly: only masters run it (the control plane), so workers do
	// not import it.
	MasterOnly bool
}

// PKI carries the cluster's trust material.
type PKI struct {
	// CA is the cluster CA; its Key is nil on workers.
	CA *pki.CA
	// ServiceAccountKeyPEM and ServiceAccountPubPEM are the service-account
	// signing key pair (masters only).
	ServiceAccountKeyPEM []byte
	ServiceAccountPubPEM []byte
	// Kubelet is this node's kubelet client credential, pre-issued by a
	// master for workers (which cannot sign). When nil and CA.Key is set, the
	// PKI phase issues it locally.
	Kubelet *pki.Credential
	// KubeProxy is kube-proxy's client credential (CN system:kube-proxy),
	// pre-issued for workers like Kubelet.
	KubeProxy *pki.Credential
	// KubeletServing is the kubelet's serving certificate (pki.KubeletServing),
	// pre-issued for workers like Kubelet.
	KubeletServing *pki.Credential
	// EtcdCA and FrontProxyCA, with their keys, and EncryptionKey (Secrets
	// at rest) are the other master-only material; nil on workers.
	EtcdCA        *pki.CA
	FrontProxyCA  *pki.CA
	EncryptionKey []byte
}

// Defaults used when a Spec field is zero.
const (
	DefaultDataDir     = "/var/lib/knode"
	DefaultDomain      = "cluster.local"
	DefaultVNI         = 1
	DefaultVXLANPort   = 8472
	DefaultKnodeBinary = "/usr/local/bin/knode"
)

// withDefaults returns a copy of s with zero fields defaulted.
func (s Spec) withDefaults() Spec {
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.Payload.BinDir == "" {
		s.Payload.BinDir = path.Join(s.DataDir, "bin")
	}
	if s.Payload.CNIBinDir == "" {
		s.Payload.CNIBinDir = path.Join(s.Payload.BinDir, "cni")
	}
	if s.Payload.ImagesDir == "" {
		s.Payload.ImagesDir = path.Join(s.DataDir, "images")
	}
	if s.Images.Etcd == "" {
		s.Images.Etcd = s.Images.ControlPlane
	}
	if s.Cluster.Domain == "" {
		s.Cluster.Domain = DefaultDomain
	}
	if s.Cluster.VNI == 0 {
		s.Cluster.VNI = DefaultVNI
	}
	if s.Cluster.VXLANPort == 0 {
		s.Cluster.VXLANPort = DefaultVXLANPort
	}
	if s.Cluster.Network == "" {
		s.Cluster.Network = Routed
	}
	if s.KnodeBinary == "" {
		s.KnodeBinary = DefaultKnodeBinary
	}
	if s.KnodeArgs == nil {
		s.KnodeArgs = []string{"agent"}
	}
	return s
}

// Masters returns the master nodes among Self and Peers, Self first if it is one.
func (s *Spec) Masters() []Node {
	var out []Node
	if s.Self.Master {
		out = append(out, s.Self)
	}
	for _, p := range s.Peers {
		if p.Master {
			out = append(out, p)
		}
	}
	return out
}

// Validate reports the first inconsistency in s that would make a phase
// misconfigure the host. It checks only what hostprep relies on; the config
// package validates user input in full.
func (s *Spec) Validate() error {
	c := s.Cluster
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		return fmt.Errorf("cluster pod range %q: want an IPv4 prefix", c.PodCIDR)
	}
	if !c.ServiceCIDR.IsValid() || !c.ServiceCIDR.Addr().Is4() {
		return fmt.Errorf("cluster service range %q: want an IPv4 prefix", c.ServiceCIDR)
	}
	if c.PodCIDR.Overlaps(c.ServiceCIDR) {
		return fmt.Errorf("pod range %s overlaps service range %s", c.PodCIDR, c.ServiceCIDR)
	}
	if c.NodeCIDRMask < c.PodCIDR.Bits() || c.NodeCIDRMask > 30 {
		return fmt.Errorf("node CIDR mask /%d: want between /%d and /30", c.NodeCIDRMask, c.PodCIDR.Bits())
	}
	switch c.Network {
	case Routed, VXLAN, Auto, "":
	default:
		return fmt.Errorf("network mode %q: want routed, vxlan or auto", c.Network)
	}
	nodes := append([]Node{s.Self}, s.Peers...)
	seen := map[netip.Prefix]string{}
	for i, n := range nodes {
		if n.Name == "" {
			return errors.New("node with empty name")
		}
		if !n.Address.Is4() {
			return fmt.Errorf("node %s: address %q is not IPv4", n.Name, n.Address)
		}
		if !n.PodCIDR.IsValid() || n.PodCIDR.Bits() != c.NodeCIDRMask || n.PodCIDR.Masked() != n.PodCIDR || !c.PodCIDR.Contains(n.PodCIDR.Addr()) {
			return fmt.Errorf("node %s: pod CIDR %q is not a /%d of %s", n.Name, n.PodCIDR, c.NodeCIDRMask, c.PodCIDR)
		}
		if other, ok := seen[n.PodCIDR]; ok {
			return fmt.Errorf("nodes %s and %s both hold pod CIDR %s", other, n.Name, n.PodCIDR)
		}
		seen[n.PodCIDR] = n.Name
		if i > 0 && n.Name == s.Self.Name {
			return fmt.Errorf("peer %s has this node's name", n.Name)
		}
	}
	return nil
}

// BridgeAddr is the address of cbr0: the first IP of the node's pod CIDR, with
// that CIDR's prefix length.
func (n Node) BridgeAddr() netip.Prefix {
	return netip.PrefixFrom(n.PodCIDR.Masked().Addr().Next(), n.PodCIDR.Bits())
}

// MaxPods is the number of pod addresses in a node CIDR of the given mask:
// the subnet minus network, broadcast and the bridge address, capped at 110
// (the kubelet's default).
func MaxPods(mask int) int {
	if mask < 0 || mask > 30 {
		return 0
	}
	n := (1 << (32 - mask)) - 3
	return min(n, 110)
}
