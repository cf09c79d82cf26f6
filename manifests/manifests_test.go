package manifests

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func controlPlane() ControlPlane {
	return ControlPlane{
		NodeName: "m1", AdvertiseAddress: netip.MustParseAddr("172.31.0.2"), ClusterName: "demo", ClusterDomain: "cluster.local",
		ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), PodCIDR: netip.MustParsePrefix("10.10.0.0/16"),
		Members: []EtcdMember{{"m1", netip.MustParseAddr("172.31.0.2")}, {"m2", netip.MustParseAddr("172.31.0.3")}, {"m3", netip.MustParseAddr("172.31.0.4")}},
		Image:   "knode.local/control-plane:v1.36.3", EtcdImage: "knode.local/etcd:v3.6.16", Command: []string{"/usr/local/bin/kube"},
		KubernetesDir: "/etc/kubernetes", PKIDir: "/etc/kubernetes/pki", EtcdDataDir: "/var/lib/etcd", BinDir: "/var/lib/knode/bin",
		AuditLogDir: "/var/log/kubernetes/audit",
	}
}

func nodeUnits() NodeUnits {
	return NodeUnits{BinDir: "/var/lib/knode/bin", ContainerdConfig: "/etc/containerd/config.toml",
		KubeletConfig: "/var/lib/kubelet/config.yaml", KubeletKubeconfig: "/etc/kubernetes/kubelet.conf",
		KubeProxyConfig: "/var/lib/kube-proxy/config.yaml", NodeName: "m1", NodeIP: "172.31.0.2",
		Knode: []string{"/usr/local/bin/knode", "agent", "--data-dir", "/var/lib/knode"}}
}

func TestGolden(t *testing.T) {
	cp := controlPlane()
	kubelet := Kubelet{ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), ClusterDomain: "cluster.local",
		PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), MaxPods: 110, CgroupDriver: "cgroupfs",
		ClientCAFile: "/etc/kubernetes/pki/ca.crt", StaticPodPath: "/etc/kubernetes/manifests",
		RuntimeEndpoint: "unix:///run/containerd/containerd.sock", ResolvConf: "/etc/resolv.conf",
		TLSCertFile: "/etc/kubernetes/pki/kubelet-serving.crt", TLSKeyFile: "/etc/kubernetes/pki/kubelet-serving.key"}
	kubeletV1 := kubelet
	kubeletV1.CgroupV1, kubeletV1.MaxPods = true, 29
	containerd := Containerd{Root: "/var/lib/containerd", State: "/run/containerd", Socket: "/run/containerd/containerd.sock",
		PauseImage: "knode.local/pause:3.10", RuncPath: "/var/lib/knode/bin/runc",
		CNIBinDir: "/var/lib/knode/bin/cni", CNIConfDir: "/etc/cni/knode.d", RegistryConfigPath: "/etc/containerd/certs.d"}
	inContainer := containerd
	inContainer.RestrictOOMScoreAdj, inContainer.SystemdCgroup = true, true
	for name, got := range map[string][]byte{
		"etcd.yaml":                    EtcdPod(cp),
		"kube-apiserver.yaml":          APIServerPod(cp),
		"kube-controller-manager.yaml": ControllerManagerPod(cp),
		"kube-scheduler.yaml":          SchedulerPod(cp),
		"kubelet-config.yaml":          KubeletConfig(kubelet),
		"kubelet-config-cgroupv1.yaml": KubeletConfig(kubeletV1),
		"kube-proxy-config.yaml": KubeProxyConfig(KubeProxy{Kubeconfig: "/etc/kubernetes/kube-proxy.conf",
			ClusterCIDR: netip.MustParsePrefix("10.10.0.0/16"), Hostname: "m1", InContainer: true}),
		"cni.conflist": CNIConfig(CNI{NetworkName: "knode", Bridge: "cbr0", Subnet: netip.MustParsePrefix("10.10.1.0/24"),
			MTU: 1450, DataDir: "/var/lib/knode/cni"}),
		"containerd.toml":              ContainerdConfig(containerd),
		"containerd-in-container.toml": ContainerdConfig(inContainer),
		"registry-hosts.toml":          RegistryMirror("http://127.0.0.1:6447"),
		"kubeconfig.yaml": KubeconfigFile(Kubeconfig{Cluster: "demo", Server: "https://172.31.0.2:6443",
			CAPEM: []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"), User: "system:node:m1",
			CertPEM: []byte("cert"), KeyPEM: []byte("key")}),
		"encryption-config.yaml": EncryptionConfig([]byte("0123456789abcdef0123456789abcdef")),
		"audit-policy.yaml":      AuditPolicy(),
		"admin-binding.yaml":     AdminBinding(),
		"containerd.service":     ContainerdUnit(nodeUnits()),
		"kubelet.service":        KubeletUnit(nodeUnits()),
		"kube-proxy.service":     KubeProxyUnit(nodeUnits()),
		"knode.service":          KnodeUnit(nodeUnits()),
		"knode-shutdown.service": ShutdownUnit(nodeUnits()),
		"knode-rshared.service":  RSharedUnit(),
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, got) })
	}
}

func TestClusterDNS(t *testing.T) {
	for svc, want := range map[string]string{"10.0.0.0/16": "10.0.0.10", "10.96.0.0/12": "10.96.0.10", "172.20.5.0/24": "172.20.5.10"} {
		if got := ClusterDNS(netip.MustParsePrefix(svc)).String(); got != want {
			t.Errorf("ClusterDNS(%s) = %s, want %s", svc, got, want)
		}
	}
}

// TestRequiredFlags pins the settings the issue asks for, independent of layout.
func TestRequiredFlags(t *testing.T) {
	cp := controlPlane()
	for _, tt := range []struct {
		doc  []byte
		want []string
	}{
		{APIServerPod(cp), []string{"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
			"--service-account-key-file=/etc/kubernetes/pki/sa.pub", "--service-cluster-ip-range=10.0.0.0/16", "livenessProbe", "path: /livez"}},
		{ControllerManagerPod(cp), []string{"--allocate-node-cidrs=false", "--cluster-name=demo", "path: /healthz"}},
		{EtcdPod(cp), []string{"--initial-cluster=m1=https://172.31.0.2:2380,m2=https://172.31.0.3:2380,m3=https://172.31.0.4:2380", "/health?serializable=true"}},
		{SchedulerPod(cp), []string{"--leader-elect=true", "port: 10259"}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(string(tt.doc), w) {
				t.Errorf("manifest lacks %q:\n%s", w, tt.doc)
			}
		}
	}
}

// TestContainerdConfigDecodes reads the rendered TOML back, refusing keys the
// configuration does not define, and checks the settings that differ between
// a plain host and a node in a container.
func TestContainerdConfigDecodes(t *testing.T) {
	for _, in := range []Containerd{
		{Root: "/r", State: "/s", Socket: "/s/c.sock", PauseImage: "p", RuncPath: "/bin/runc", CNIBinDir: "/cni", CNIConfDir: "/etc/cni", RegistryConfigPath: "/etc/d"},
		{SystemdCgroup: true, RestrictOOMScoreAdj: true, RuncPath: "/x/runc"},
	} {
		doc := ContainerdConfig(in)
		var got containerdConfig
		dec := toml.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		runc := got.Plugins.Runtime.Containerd.Runtimes["runc"]
		if got.Version != 3 || got.GRPC.Address != in.Socket || got.Plugins.Images.PinnedImages.Sandbox != in.PauseImage ||
			got.Plugins.Runtime.RestrictOOMScoreAdj != in.RestrictOOMScoreAdj || runc.Options.SystemdCgroup != in.SystemdCgroup ||
			runc.Options.BinaryName != in.RuncPath || runc.RuntimeType != "io.containerd.runc.v2" ||
			got.Plugins.Runtime.Containerd.DefaultRuntimeName != "runc" || got.Plugins.Runtime.CNI.ConfDir != in.CNIConfDir ||
			got.Plugins.Images.Registry.ConfigPath != in.RegistryConfigPath {
			t.Errorf("%+v rendered as\n%s", in, doc)
		}
	}
}

// TestRegistryMirrorDecodes reads hosts.toml back strictly.
func TestRegistryMirrorDecodes(t *testing.T) {
	var got registryHosts
	dec := toml.NewDecoder(bytes.NewReader(RegistryMirror("http://127.0.0.1:6447")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if h, ok := got.Host["http://127.0.0.1:6447"]; !ok || len(got.Host) != 1 || strings.Join(h.Capabilities, ",") != "pull,resolve" {
		t.Errorf("decoded %+v", got)
	}
}
