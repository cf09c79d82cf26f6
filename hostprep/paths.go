package hostprep

import (
	"net/netip"
	"path"
)

// Host paths knode owns. They are absolute paths on the host; a Files
// implementation may place them under a root prefix.
const (
	SysctlConfPath  = "/etc/sysctl.d/90-knode.conf"
	ModulesConfPath = "/etc/modules-load.d/knode.conf"
	// CNIConfDir is knode's own: containerd's CRI takes the first file of
	// its directory by name, and /etc/cni/net.d often keeps what another
	// installation left (kubeadm reset leaves flannel's or calico's
	// 10-*.conflist there, which would sort before knode's). knode's
	// containerd reads only this one, and knode touches nothing in net.d.
	CNIConfDir  = "/etc/cni/knode.d"
	CNIConfPath = CNIConfDir + "/10-knode.conflist"
	// legacyCNIConfPath is where knode wrote it before it had its own
	// directory; reset still
	// removes it.
	legacyCNIConfPath   = "/etc/cni/net.d/10-knode.conflist"
	KubernetesDir       = "/etc/kubernetes"
	PKIDir              = KubernetesDir + "/pki"
	ManifestsDir        = KubernetesDir + "/manifests"
	KubeletConfigPath   = "/var/lib/kubelet/config.yaml"
	KubeProxyConfigPath = "/var/lib/kube-proxy/config.yaml"
	ContainerdConfPath  = "/etc/containerd/config.toml"
	SystemdUnitDir      = "/etc/systemd/system"
	EtcdDataDir         = "/var/lib/etcd"
	// EtcdRestoresDir keeps the data directories a restore set aside.
	EtcdRestoresDir = "/var/lib/etcd-restores"
	// AuditLogDir holds the apiserver's audit log, rotated by size.
	AuditLogDir = "/var/log/kubernetes/audit"
	// PayloadLink points at the staged binaries (the data directory's bin),
	// at the same path on every node whatever its --data-dir: pods of a
	// Deployment (CoreDNS) mount it to run them.
	PayloadLink = "/opt/knode/bin"
)

// Ports of the apiserver.
const (
	// APIServerPort is each master's apiserver, on all its addresses.
	APIServerPort = 6443
	// APIEndpointPort is the node-local apiserver endpoint's port on
	// 127.0.0.1 (see APIEndpoint): 6443 is taken by the apiserver on
	// masters; 6444 is also k3s's choice.
	APIEndpointPort = 6444
)

// APIEndpoint is the node-local apiserver endpoint the agent serves on every
// node (package apilb): a balancer over the masters' apiservers, which every
// kubeconfig knode writes points at.
func APIEndpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), APIEndpointPort)
}

// statePath is where hostprep keeps what it must know to undo its changes.
func (s *Spec) statePath(name string) string {
	return path.Join(s.DataDir, "hostprep", name)
}
