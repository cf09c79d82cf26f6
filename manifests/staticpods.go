package manifests

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// Files of the control plane under the PKI directory (/etc/kubernetes/pki).
const (
	CACert                = "ca.crt"
	CAKey                 = "ca.key"
	APIServerCert         = "apiserver.crt"
	APIServerKey          = "apiserver.key"
	APIServerKubeletCert  = "apiserver-kubelet-client.crt"
	APIServerKubeletKey   = "apiserver-kubelet-client.key"
	APIServerEtcdCert     = "apiserver-etcd-client.crt"
	APIServerEtcdKey      = "apiserver-etcd-client.key"
	ServiceAccountKey     = "sa.key"
	ServiceAccountPub     = "sa.pub"
	EtcdServerCert        = "etcd/server.crt"
	EtcdServerKey         = "etcd/server.key"
	EtcdPeerCert          = "etcd/peer.crt"
	EtcdPeerKey           = "etcd/peer.key"
	ControllerManagerConf = "controller-manager.conf"
	SchedulerConf         = "scheduler.conf"
)

// EtcdMember is one master's etcd.
type EtcdMember struct {
	Name    string
	Address netip.Addr
}

// ControlPlane holds what the static pods of a master need.
type ControlPlane struct {
	NodeName         string
	AdvertiseAddress netip.Addr
	ClusterName      string
	ClusterDomain    string
	ServiceCIDR      netip.Prefix
	PodCIDR          netip.Prefix
	// Members are every master's etcd, this one included; the cluster is
	// bootstrapped with all of them.
	Members []EtcdMember
	// EtcdClusterState is "new" when bootstrapping, "existing" when joining.
	EtcdClusterState string
	Image            string
	EtcdImage        string
	// Command is prepended to each component's name (empty: the name is the command).
	Command       []string
	KubernetesDir string
	PKIDir        string
	EtcdDataDir   string
	// BinDir is the node's directory of staged binaries, mounted read-only
	// at PodBinDir in every pod (the image holds no binary); empty: none.
	BinDir string
	// AuditLogDir receives the apiserver's audit log (audit.log, rotated by
	// size); its policy is KubernetesDir/AuditPolicyFile.
	AuditLogDir string
}

func (c ControlPlane) pki(f string) string { return path.Join(c.PKIDir, f) }

func (c ControlPlane) cmd(name string, flags map[string]string) []string {
	out := append(append([]string{}, c.Command...), name)
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		out = append(out, "--"+k+"="+flags[k])
	}
	return out
}

type hostPath struct {
	name, path, kind string
	readOnly         bool
}

// PodBinDir is where pods find the staged binaries (release.PodBinDir: the
// images' PATH and entrypoints name it).
const PodBinDir = "/usr/local/bin"

// binariesVolume mounts the node's staged binaries at PodBinDir, read-only.
func binariesVolume(hostDir string) (volumeMount, volume) {
	return volumeMount{MountPath: PodBinDir, Name: "knode-bin", ReadOnly: true},
		volume{HostPath: &hostPathVolume{Path: hostDir, Type: "Directory"}, Name: "knode-bin"}
}

// liveness is an HTTP(S) liveness probe, as kubeadm sets them.
func liveness(host string, port int, p, scheme string) *probe {
	return &probe{
		FailureThreshold:    8,
		HTTPGet:             &httpGetAction{Host: host, Path: p, Port: port, Scheme: scheme},
		InitialDelaySeconds: 10,
		PeriodSeconds:       10,
		TimeoutSeconds:      15,
	}
}

// startupTries bound how long a control-plane component may take to answer its
// probe for the first time before the kubelet restarts it: kubeadm's 24 tries
// (4 minutes) are too few on a slow machine, where the apiserver first answers
// after minutes and, killed by its liveness probe, starts over for ever (seen
// in the VM lab under TCG). The liveness probe takes over once it answered.
const startupTries = 60

// startup is the startup probe guarding a liveness probe: the same check,
// startupTries times, every PeriodSeconds.
func startup(live *probe) *probe {
	if live == nil {
		return nil
	}
	p := *live
	p.FailureThreshold = startupTries
	return &p
}

// staticPodPriority is the system-node-critical priority class's value.
const staticPodPriority int32 = 2000001000

func staticPod(name, image, binDir string, command []string, live *probe, vols []hostPath) []byte {
	var mounts []volumeMount
	var volumes []volume
	if binDir != "" {
		m, v := binariesVolume(binDir)
		mounts, volumes = append(mounts, m), append(volumes, v)
	}
	for _, v := range vols {
		mounts = append(mounts, volumeMount{MountPath: v.path, Name: v.name, ReadOnly: v.readOnly})
		volumes = append(volumes, volume{HostPath: &hostPathVolume{Path: v.path, Type: v.kind}, Name: v.name})
	}
	priority := staticPodPriority
	return toYAML(pod{
		typeMeta: typeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: objectMeta{
			Labels:    map[string]string{"component": name, "tier": "control-plane"},
			Name:      name,
			Namespace: "kube-system",
		},
		Spec: podSpec{
			Containers: []container{{
				Command:         command,
				Image:           image,
				ImagePullPolicy: "Never",
				LivenessProbe:   live,
				Name:            name,
				Resources:       resources{Requests: map[string]string{"cpu": "100m"}},
				StartupProbe:    startup(live),
				VolumeMounts:    mounts,
			}},
			HostNetwork:       true,
			Priority:          &priority,
			PriorityClassName: "system-node-critical",
			SecurityContext:   &podSecurityContext{SeccompProfile: &seccompProfile{Type: "RuntimeDefault"}},
			Volumes:           volumes,
		},
	})
}

// EtcdPod renders etcd.yaml.
func EtcdPod(c ControlPlane) []byte {
	var initial []string
	for _, m := range c.Members {
		initial = append(initial, fmt.Sprintf("%s=https://%s", m.Name, netip.AddrPortFrom(m.Address, 2380)))
	}
	self := c.AdvertiseAddress.String()
	state := c.EtcdClusterState
	if state == "" {
		state = "new"
	}
	flags := map[string]string{
		"name":                        c.NodeName,
		"data-dir":                    c.EtcdDataDir,
		"advertise-client-urls":       "https://" + self + ":2379",
		"listen-client-urls":          "https://127.0.0.1:2379,https://" + self + ":2379",
		"initial-advertise-peer-urls": "https://" + self + ":2380",
		"listen-peer-urls":            "https://" + self + ":2380",
		"listen-metrics-urls":         "http://127.0.0.1:2381",
		"initial-cluster":             strings.Join(initial, ","),
		"initial-cluster-state":       state,
		"initial-cluster-token":       "knode-" + c.ClusterName,
		"client-cert-auth":            "true",
		"peer-client-cert-auth":       "true",
		"cert-file":                   c.pki(EtcdServerCert),
		"key-file":                    c.pki(EtcdServerKey),
		"trusted-ca-file":             c.pki(EtcdCACert),
		"peer-cert-file":              c.pki(EtcdPeerCert),
		"peer-key-file":               c.pki(EtcdPeerKey),
		"peer-trusted-ca-file":        c.pki(EtcdCACert),
		"snapshot-count":              "10000",
	}
	return staticPod("etcd", c.EtcdImage, c.BinDir, c.cmd("etcd", flags), liveness("127.0.0.1", 2381, "/health?serializable=true", "HTTP"), []hostPath{
		{"etcd-data", c.EtcdDataDir, "DirectoryOrCreate", false},
		{"etcd-certs", path.Join(c.PKIDir, "etcd"), "DirectoryOrCreate", true},
	})
}

// APIServerPod renders kube-apiserver.yaml. It talks to the local etcd
// member (each master runs one) with a client certificate of the etcd CA,
// verifies kubelets' serving certificates, runs the aggregation layer with
// the front-proxy CA, encrypts Secrets at rest and writes an audit log.
func APIServerPod(c ControlPlane) []byte {
	policy := path.Join(c.KubernetesDir, AuditPolicyFile)
	flags := map[string]string{
		"audit-log-maxage":                   "30",
		"audit-log-maxbackup":                "10",
		"audit-log-maxsize":                  "100",
		"audit-log-path":                     path.Join(c.AuditLogDir, "audit.log"),
		"audit-policy-file":                  policy,
		"enable-aggregator-routing":          "true",
		"encryption-provider-config":         c.pki(EncryptionConfigFile),
		"kubelet-certificate-authority":      c.pki(CACert),
		"proxy-client-cert-file":             c.pki(FrontProxyClientCert),
		"proxy-client-key-file":              c.pki(FrontProxyClientKey),
		"requestheader-allowed-names":        FrontProxyClientName,
		"requestheader-client-ca-file":       c.pki(FrontProxyCACert),
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"advertise-address":                  c.AdvertiseAddress.String(),
		"allow-privileged":                   "true",
		"authorization-mode":                 "Node,RBAC",
		"client-ca-file":                     c.pki(CACert),
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "false",
		"etcd-cafile":                        c.pki(EtcdCACert),
		"etcd-certfile":                      c.pki(APIServerEtcdCert),
		"etcd-keyfile":                       c.pki(APIServerEtcdKey),
		"etcd-servers":                       "https://127.0.0.1:2379",
		"kubelet-client-certificate":         c.pki(APIServerKubeletCert),
		"kubelet-client-key":                 c.pki(APIServerKubeletKey),
		"kubelet-preferred-address-types":    "InternalIP,Hostname",
		"secure-port":                        "6443",
		"service-account-issuer":             "https://kubernetes.default.svc." + c.ClusterDomain,
		"service-account-key-file":           c.pki(ServiceAccountPub),
		"service-account-signing-key-file":   c.pki(ServiceAccountKey),
		"service-cluster-ip-range":           c.ServiceCIDR.String(),
		"tls-cert-file":                      c.pki(APIServerCert),
		"tls-private-key-file":               c.pki(APIServerKey),
	}
	return staticPod("kube-apiserver", c.Image, c.BinDir, c.cmd("kube-apiserver", flags), liveness(c.AdvertiseAddress.String(), 6443, "/livez", "HTTPS"), []hostPath{
		{"k8s-certs", c.PKIDir, "DirectoryOrCreate", true},
		{"audit-policy", policy, "File", true},
		{"audit-log", c.AuditLogDir, "DirectoryOrCreate", false},
	})
}

// ControllerManagerPod renders kube-controller-manager.yaml. Node CIDRs are
// knode's to allocate, so the controller manager does not.
func ControllerManagerPod(c ControlPlane) []byte {
	kc := path.Join(c.KubernetesDir, ControllerManagerConf)
	flags := map[string]string{
		"allocate-node-cidrs":              "false",
		"authentication-kubeconfig":        kc,
		"authorization-kubeconfig":         kc,
		"bind-address":                     "127.0.0.1",
		"client-ca-file":                   c.pki(CACert),
		"cluster-cidr":                     c.PodCIDR.String(),
		"cluster-name":                     c.ClusterName,
		"cluster-signing-cert-file":        c.pki(CACert),
		"cluster-signing-key-file":         c.pki(CAKey),
		"controllers":                      "*,bootstrapsigner,tokencleaner",
		"kubeconfig":                       kc,
		"leader-elect":                     "true",
		"root-ca-file":                     c.pki(CACert),
		"service-account-private-key-file": c.pki(ServiceAccountKey),
		"service-cluster-ip-range":         c.ServiceCIDR.String(),
		"use-service-account-credentials":  "true",
	}
	return staticPod("kube-controller-manager", c.Image, c.BinDir, c.cmd("kube-controller-manager", flags), liveness("127.0.0.1", 10257, "/healthz", "HTTPS"), []hostPath{
		{"k8s-certs", c.PKIDir, "DirectoryOrCreate", true},
		{"kubeconfig", kc, "FileOrCreate", true},
	})
}

// SchedulerPod renders kube-scheduler.yaml.
func SchedulerPod(c ControlPlane) []byte {
	kc := path.Join(c.KubernetesDir, SchedulerConf)
	flags := map[string]string{
		"authentication-kubeconfig": kc,
		"authorization-kubeconfig":  kc,
		"bind-address":              "127.0.0.1",
		"kubeconfig":                kc,
		"leader-elect":              "true",
	}
	return staticPod("kube-scheduler", c.Image, c.BinDir, c.cmd("kube-scheduler", flags), liveness("127.0.0.1", 10259, "/healthz", "HTTPS"), []hostPath{
		{"kubeconfig", kc, "FileOrCreate", true},
	})
}
