package manifests

import (
	"bytes"
	"net/netip"
	"strings"
)

// CoreDNS is the cluster DNS addon's settings.
type CoreDNS struct {
	// Image is imported into containerd locally ("knode.local/coredns:v1.14.7"),
	// hence imagePullPolicy: Never. Its entrypoint is /coredns, as upstream's.
	Image string
	// ClusterIP is the kube-dns Service's address, the one every kubelet hands
	// to pods as clusterDNS: ClusterDNS(serviceCIDR). It must be valid.
	ClusterIP netip.Addr
	// Domain is the cluster domain ("cluster.local", the default when empty).
	Domain string
	// Replicas of the Deployment; 1 when zero or less.
	Replicas int
}

// coreDNSLabels select the addon's pods; they match kubeadm's so that tools
// written for a kubeadm cluster (k8s-app=kube-dns) find them.
func coreDNSLabels() obj { return obj{{"k8s-app", "kube-dns"}} }

// CoreDNSAddon renders the cluster DNS addon as one multi-document YAML for
// kubectl apply -f -: ServiceAccount, ClusterRole and ClusterRoleBinding,
// the Corefile's ConfigMap, the Deployment and the kube-dns Service, all in
// kube-system and named as kubeadm's CoreDNS addon.
func CoreDNSAddon(c CoreDNS) []byte {
	if c.Domain == "" {
		c.Domain = "cluster.local"
	}
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	return joinDocs(
		yamlDoc(obj{
			{"apiVersion", "v1"},
			{"kind", "ServiceAccount"},
			{"metadata", obj{{"name", "coredns"}, {"namespace", "kube-system"}}},
		}),
		coreDNSClusterRole(),
		yamlDoc(obj{
			{"apiVersion", "rbac.authorization.k8s.io/v1"},
			{"kind", "ClusterRoleBinding"},
			{"metadata", obj{{"name", "system:coredns"}}},
			{"roleRef", obj{
				{"apiGroup", "rbac.authorization.k8s.io"},
				{"kind", "ClusterRole"},
				{"name", "system:coredns"},
			}},
			{"subjects", []any{obj{
				{"kind", "ServiceAccount"},
				{"name", "coredns"},
				{"namespace", "kube-system"},
			}}},
		}),
		configMapDoc(obj{{"name", "coredns"}, {"namespace", "kube-system"}}, "Corefile", corefile(c.Domain)),
		coreDNSDeployment(c),
		coreDNSService(c.ClusterIP),
	)
}

func coreDNSClusterRole() []byte {
	rule := func(group string, resources []string, verbs ...string) obj {
		return obj{{"apiGroups", []any{group}}, {"resources", strs(resources)}, {"verbs", strs(verbs)}}
	}
	return yamlDoc(obj{
		{"apiVersion", "rbac.authorization.k8s.io/v1"},
		{"kind", "ClusterRole"},
		{"metadata", obj{{"name", "system:coredns"}}},
		{"rules", []any{
			rule("", []string{"endpoints", "services", "pods", "namespaces"}, "list", "watch"),
			rule("", []string{"nodes"}, "get"),
			rule("discovery.k8s.io", []string{"endpointslices"}, "list", "watch"),
		}},
	})
}

// corefile is kubeadm's Corefile for domain. It uses only plugins that
// knode's CoreDNS build (release/build/coredns) compiles in.
//
// forward sends other names to the node's upstream servers: the pods run
// with dnsPolicy Default, so their /etc/resolv.conf is the file the
// kubelet's resolvConf names. Caveats of that file, right as it is for real
// machines:
//   - A loopback resolver (127.0.0.53 of systemd-resolved) sends queries
//     back to CoreDNS itself; loop then makes it exit on purpose
//     (CrashLoopBackOff). Point the kubelet's resolvConf at
//     /run/systemd/resolve/resolv.conf on such hosts rather than dropping
//     loop, which would turn the crash into a silent forwarding storm.
//   - No nameserver line at all makes forward refuse to start ("no valid
//     upstream addresses found", CoreDNS 1.14.7), taking cluster names down
//     too. An unreachable nameserver is fine: other names then fail with
//     SERVFAIL and cluster names still resolve (a lab without upstream DNS).
func corefile(domain string) string {
	return `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ` + domain + ` in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
        max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`
}

func coreDNSDeployment(c CoreDNS) []byte {
	port := func(name string, n int, proto string) obj {
		return obj{{"containerPort", n}, {"name", name}, {"protocol", proto}}
	}
	httpGet := func(path string, port int) obj {
		return obj{{"path", path}, {"port", port}, {"scheme", "HTTP"}}
	}
	container := obj{
		{"args", strs([]string{"-conf", "/etc/coredns/Corefile"})},
		{"image", c.Image},
		{"imagePullPolicy", "Never"},
		{"livenessProbe", obj{
			{"failureThreshold", 5},
			{"httpGet", httpGet("/health", 8080)},
			{"initialDelaySeconds", 60},
			{"successThreshold", 1},
			{"timeoutSeconds", 5},
		}},
		{"name", "coredns"},
		{"ports", []any{port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP"), port("metrics", 9153, "TCP")}},
		{"readinessProbe", obj{{"httpGet", httpGet("/ready", 8181)}}},
		{"resources", obj{
			{"limits", obj{{"memory", "170Mi"}}},
			{"requests", obj{{"cpu", "100m"}, {"memory", "70Mi"}}},
		}},
		{"securityContext", obj{
			{"allowPrivilegeEscalation", false},
			{"capabilities", obj{{"add", []any{"NET_BIND_SERVICE"}}, {"drop", []any{"ALL"}}}},
			{"readOnlyRootFilesystem", true},
		}},
		{"volumeMounts", []any{obj{{"mountPath", "/etc/coredns"}, {"name", "config-volume"}, {"readOnly", true}}}},
	}
	// Spread replicas over nodes when there are several, as kubeadm does.
	antiAffinity := obj{{"preferredDuringSchedulingIgnoredDuringExecution", []any{obj{
		{"podAffinityTerm", obj{
			{"labelSelector", obj{{"matchExpressions", []any{obj{
				{"key", "k8s-app"}, {"operator", "In"}, {"values", []any{"kube-dns"}},
			}}}}},
			{"topologyKey", "kubernetes.io/hostname"},
		}},
		{"weight", 100},
	}}}}
	return yamlDoc(obj{
		{"apiVersion", "apps/v1"},
		{"kind", "Deployment"},
		{"metadata", obj{{"labels", coreDNSLabels()}, {"name", "coredns"}, {"namespace", "kube-system"}}},
		{"spec", obj{
			{"replicas", c.Replicas},
			{"selector", obj{{"matchLabels", coreDNSLabels()}}},
			{"strategy", obj{{"rollingUpdate", obj{{"maxUnavailable", 1}}}, {"type", "RollingUpdate"}}},
			{"template", obj{
				{"metadata", obj{{"labels", coreDNSLabels()}}},
				{"spec", obj{
					{"affinity", obj{{"podAntiAffinity", antiAffinity}}},
					{"containers", []any{container}},
					// Default: the node's resolv.conf, which forward reads (see corefile).
					{"dnsPolicy", "Default"},
					{"nodeSelector", obj{{"kubernetes.io/os", "linux"}}},
					{"priorityClassName", "system-cluster-critical"},
					{"serviceAccountName", "coredns"},
					{"tolerations", []any{
						obj{{"key", "CriticalAddonsOnly"}, {"operator", "Exists"}},
						obj{{"effect", "NoSchedule"}, {"key", "node-role.kubernetes.io/control-plane"}},
					}},
					{"volumes", []any{obj{
						{"configMap", obj{
							{"items", []any{obj{{"key", "Corefile"}, {"path", "Corefile"}}}},
							{"name", "coredns"},
						}},
						{"name", "config-volume"},
					}}},
				}},
			}},
		}},
	})
}

func coreDNSService(ip netip.Addr) []byte {
	port := func(name string, n int, proto string) obj {
		return obj{{"name", name}, {"port", n}, {"protocol", proto}, {"targetPort", n}}
	}
	return yamlDoc(obj{
		{"apiVersion", "v1"},
		{"kind", "Service"},
		{"metadata", obj{
			{"annotations", obj{{"prometheus.io/port", "9153"}, {"prometheus.io/scrape", "true"}}},
			{"labels", obj{
				{"k8s-app", "kube-dns"},
				{"kubernetes.io/cluster-service", "true"},
				{"kubernetes.io/name", "CoreDNS"},
			}},
			{"name", "kube-dns"},
			{"namespace", "kube-system"},
		}},
		{"spec", obj{
			{"clusterIP", ip.String()},
			{"ports", []any{port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP"), port("metrics", 9153, "TCP")}},
			{"selector", coreDNSLabels()},
		}},
	})
}

// configMapDoc renders a ConfigMap holding text under key as a literal
// block scalar, so the file reads as itself; yamlDoc has no multi-line
// strings. text must end in a newline ("|" keeps exactly one).
func configMapDoc(meta obj, key, text string) []byte {
	var b strings.Builder
	b.Write(yamlDoc(obj{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", meta}}))
	b.WriteString("data:\n  " + key + ": |\n")
	for line := range strings.Lines(text) {
		if line != "\n" {
			b.WriteString("    ")
		}
		b.WriteString(line)
	}
	return []byte(b.String())
}

// joinDocs joins YAML documents into one multi-document stream.
func joinDocs(docs ...[]byte) []byte {
	return bytes.Join(docs, []byte("---\n"))
}
