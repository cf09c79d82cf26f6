package manifests

import (
	"net/netip"
)

// Kubelet configures the kubelet through its KubeletConfiguration file.
type Kubelet struct {
	// ServiceCIDR gives clusterDNS: its tenth address.
	ServiceCIDR   netip.Prefix
	ClusterDomain string
	PodCIDR       netip.Prefix
	MaxPods       int
	// CgroupDriver is "cgroupfs" or "systemd", as containerd's.
	CgroupDriver string
	// CgroupV1 lets the kubelet run on a cgroup v1 host (failCgroupV1: false).
	CgroupV1         bool
	ClientCAFile     string
	StaticPodPath    string
	RuntimeEndpoint  string
	ResolvConf       string
	KubeletConfigDir string
	// TLSCertFile and TLSKeyFile are the kubelet's serving certificate,
	// signed by the cluster CA for the node's name and address, which the
	// apiserver verifies.
	TLSCertFile, TLSKeyFile string
}

// ClusterDNS is the address of the cluster DNS service: the tenth address
// of the service range, as the from-scratch guide and kubeadm choose.
func ClusterDNS(service netip.Prefix) netip.Addr {
	a := service.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a
}

// kubeletConfiguration mirrors the fields knode sets of
// k8s.io/kubelet/config/v1beta1.KubeletConfiguration.
type kubeletConfiguration struct {
	typeMeta
	Authentication struct {
		Anonymous struct {
			Enabled bool `json:"enabled"`
		} `json:"anonymous"`
		Webhook struct {
			Enabled bool `json:"enabled"`
		} `json:"webhook"`
		X509 struct {
			ClientCAFile string `json:"clientCAFile"`
		} `json:"x509"`
	} `json:"authentication"`
	Authorization struct {
		Mode string `json:"mode"`
	} `json:"authorization"`
	CgroupDriver             string   `json:"cgroupDriver"`
	ClusterDNS               []string `json:"clusterDNS"`
	ClusterDomain            string   `json:"clusterDomain"`
	ContainerRuntimeEndpoint string   `json:"containerRuntimeEndpoint"`
	FailCgroupV1             *bool    `json:"failCgroupV1,omitempty"`
	FailSwapOn               bool     `json:"failSwapOn"`
	MaxPods                  int      `json:"maxPods"`
	PodCIDR                  string   `json:"podCIDR"`
	ResolvConf               string   `json:"resolvConf"`
	StaticPodPath            string   `json:"staticPodPath"`
	TLSCertFile              string   `json:"tlsCertFile,omitempty"`
	TLSPrivateKeyFile        string   `json:"tlsPrivateKeyFile,omitempty"`
}

// KubeletConfig renders the KubeletConfiguration.
func KubeletConfig(k Kubelet) []byte {
	c := kubeletConfiguration{
		typeMeta:                 typeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		CgroupDriver:             k.CgroupDriver,
		ClusterDNS:               []string{ClusterDNS(k.ServiceCIDR).String()},
		ClusterDomain:            k.ClusterDomain,
		ContainerRuntimeEndpoint: k.RuntimeEndpoint,
		FailSwapOn:               false,
		MaxPods:                  k.MaxPods,
		PodCIDR:                  k.PodCIDR.String(),
		ResolvConf:               k.ResolvConf,
		StaticPodPath:            k.StaticPodPath,
		TLSCertFile:              k.TLSCertFile,
		TLSPrivateKeyFile:        k.TLSKeyFile,
	}
	c.Authentication.Anonymous.Enabled = false
	c.Authentication.Webhook.Enabled = true
	c.Authentication.X509.ClientCAFile = k.ClientCAFile
	c.Authorization.Mode = "Webhook"
	if k.CgroupV1 {
		c.FailCgroupV1 = new(false)
	}
	return toYAML(c)
}

// KubeProxy configures kube-proxy in iptables mode.
type KubeProxy struct {
	Kubeconfig  string
	ClusterCIDR netip.Prefix
	Hostname    string
	// InContainer leaves nf_conntrack_max alone: it is the host's.
	InContainer bool
}

// kubeProxyConfiguration mirrors the fields knode sets of
// k8s.io/kube-proxy/config/v1alpha1.KubeProxyConfiguration.
type kubeProxyConfiguration struct {
	typeMeta
	ClientConnection struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"clientConnection"`
	ClusterCIDR      string              `json:"clusterCIDR"`
	Conntrack        *kubeProxyConntrack `json:"conntrack,omitempty"`
	HostnameOverride string              `json:"hostnameOverride"`
	Mode             string              `json:"mode"`
}

// kubeProxyConntrack holds maxPerCore: 0 leaves nf_conntrack_max as it is.
type kubeProxyConntrack struct {
	MaxPerCore *int32 `json:"maxPerCore"`
}

// KubeProxyConfig renders the KubeProxyConfiguration.
func KubeProxyConfig(k KubeProxy) []byte {
	c := kubeProxyConfiguration{
		typeMeta:         typeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration"},
		ClusterCIDR:      k.ClusterCIDR.String(),
		HostnameOverride: k.Hostname,
		Mode:             "iptables",
	}
	c.ClientConnection.Kubeconfig = k.Kubeconfig
	if k.InContainer {
		c.Conntrack = &kubeProxyConntrack{MaxPerCore: new(int32(0))}
	}
	return toYAML(c)
}
