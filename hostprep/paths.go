package hostprep

import "path"

// Host paths knode owns. They are absolute paths on the host; a Files
// implementation may place them under a root prefix.
const (
	SysctlConfPath      = "/etc/sysctl.d/90-knode.conf"
	ModulesConfPath     = "/etc/modules-load.d/knode.conf"
	CNIConfDir          = "/etc/cni/net.d"
	CNIConfPath         = CNIConfDir + "/10-knode.conflist"
	KubernetesDir       = "/etc/kubernetes"
	PKIDir              = KubernetesDir + "/pki"
	ManifestsDir        = KubernetesDir + "/manifests"
	KubeletConfigPath   = "/var/lib/kubelet/config.yaml"
	KubeProxyConfigPath = "/var/lib/kube-proxy/config.yaml"
	ContainerdConfPath  = "/etc/containerd/config.toml"
	SystemdUnitDir      = "/etc/systemd/system"
	EtcdDataDir         = "/var/lib/etcd"
	// AuditLogDir holds the apiserver's audit log, rotated by size.
	AuditLogDir = "/var/log/kubernetes/audit"
	// PayloadLink points at the staged binaries (the data directory's bin),
	// at the same path on every node whatever its --data-dir: pods of a
	// Deployment (CoreDNS) mount it to run them.
	PayloadLink = "/opt/knode/bin"
)

// statePath is where hostprep keeps what it must know to undo its changes.
func (s *Spec) statePath(name string) string {
	return path.Join(s.DataDir, "hostprep", name)
}
