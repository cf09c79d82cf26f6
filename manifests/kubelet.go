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

// KubeletConfig renders the KubeletConfiguration.
func KubeletConfig(k Kubelet) []byte {
	o := obj{
		{"apiVersion", "kubelet.config.k8s.io/v1beta1"},
		{"kind", "KubeletConfiguration"},
		{"authentication", obj{
			{"anonymous", obj{{"enabled", false}}},
			{"webhook", obj{{"enabled", true}}},
			{"x509", obj{{"clientCAFile", k.ClientCAFile}}},
		}},
		{"authorization", obj{{"mode", "Webhook"}}},
		{"cgroupDriver", k.CgroupDriver},
		{"clusterDNS", []any{ClusterDNS(k.ServiceCIDR).String()}},
		{"clusterDomain", k.ClusterDomain},
		{"containerRuntimeEndpoint", k.RuntimeEndpoint},
	}
	if k.CgroupV1 {
		o = append(o, kv{"failCgroupV1", false})
	}
	o = append(o,
		kv{"failSwapOn", false},
		kv{"maxPods", k.MaxPods},
		kv{"podCIDR", k.PodCIDR.String()},
		kv{"resolvConf", k.ResolvConf},
		kv{"staticPodPath", k.StaticPodPath},
	)
	return yamlDoc(o)
}

// KubeProxy configures kube-proxy in iptables mode.
type KubeProxy struct {
	Kubeconfig  string
	ClusterCIDR netip.Prefix
	Hostname    string
	// InContainer leaves nf_conntrack_max alone: it is the host's.
	InContainer bool
}

// KubeProxyConfig renders the KubeProxyConfiguration.
func KubeProxyConfig(k KubeProxy) []byte {
	o := obj{
		{"apiVersion", "kubeproxy.config.k8s.io/v1alpha1"},
		{"kind", "KubeProxyConfiguration"},
		{"clientConnection", obj{{"kubeconfig", k.Kubeconfig}}},
		{"clusterCIDR", k.ClusterCIDR.String()},
		{"hostnameOverride", k.Hostname},
		{"mode", "iptables"},
	}
	if k.InContainer {
		o = append(o, kv{"conntrack", obj{{"maxPerCore", 0}}})
	}
	return yamlDoc(o)
}
