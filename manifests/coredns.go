package manifests

import (
	"net/netip"
)

// CoreDNS is the cluster DNS addon's settings.
type CoreDNS struct {
	// Image is imported into containerd locally ("knode.local/coredns:v1.14.7"),
	// hence imagePullPolicy: Never. Its entrypoint is PodBinDir/coredns.
	Image string
	// BinDir is the host directory of the staged binaries on every node,
	// mounted read-only at PodBinDir (the image holds no binary); empty: none.
	BinDir string
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
func coreDNSLabels() map[string]string { return map[string]string{"k8s-app": "kube-dns"} }

// CoreDNSAddon renders the cluster DNS addon as one multi-document YAML
// (CoreDNSObjects in a stream).
func CoreDNSAddon(c CoreDNS) []byte { return Stream(CoreDNSObjects(c)...) }

// CoreDNSObjects are the cluster DNS addon's objects, in the order they are
// applied: ServiceAccount, ClusterRole and ClusterRoleBinding, the
// Corefile's ConfigMap, the Deployment and the kube-dns Service, all in
// kube-system and named as kubeadm's CoreDNS addon.
func CoreDNSObjects(c CoreDNS) []Object {
	if c.Domain == "" {
		c.Domain = "cluster.local"
	}
	if c.Replicas < 1 {
		c.Replicas = 1
	}
	inKubeSystem := objectMeta{Name: "coredns", Namespace: "kube-system"}
	sa := serviceAccount{typeMeta: typeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, Metadata: inKubeSystem}
	role := coreDNSClusterRole()
	binding := clusterRoleBinding{
		typeMeta: typeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		Metadata: objectMeta{Name: "system:coredns"},
		RoleRef:  roleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:coredns"},
		Subjects: []subject{{Kind: "ServiceAccount", Name: "coredns", Namespace: "kube-system"}},
	}
	cm := configMap{
		typeMeta: typeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		Metadata: inKubeSystem,
		Data:     map[string]string{"Corefile": corefile(c.Domain)},
	}
	dep, svc := coreDNSDeployment(c), coreDNSService(c.ClusterIP)
	return []Object{
		object(sa.typeMeta, sa.Metadata, sa),
		object(role.typeMeta, role.Metadata, role),
		object(binding.typeMeta, binding.Metadata, binding),
		object(cm.typeMeta, cm.Metadata, cm),
		object(dep.typeMeta, dep.Metadata, dep),
		object(svc.typeMeta, svc.Metadata, svc),
	}
}

func coreDNSClusterRole() clusterRole {
	rule := func(group string, resources []string, verbs ...string) policyRule {
		return policyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
	}
	return clusterRole{
		typeMeta: typeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		Metadata: objectMeta{Name: "system:coredns"},
		Rules: []policyRule{
			rule("", []string{"endpoints", "services", "pods", "namespaces"}, "list", "watch"),
			rule("", []string{"nodes"}, "get"),
			rule("discovery.k8s.io", []string{"endpointslices"}, "list", "watch"),
		},
	}
}

// corefile is kubeadm's Corefile for domain. It uses only plugins that
// knode's CoreDNS build (release/build/kube/coredns.go) compiles in.
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

func coreDNSDeployment(c CoreDNS) deployment {
	ports := []containerPort{{ContainerPort: 53, Name: "dns", Protocol: "UDP"},
		{ContainerPort: 53, Name: "dns-tcp", Protocol: "TCP"}, {ContainerPort: 9153, Name: "metrics", Protocol: "TCP"}}
	httpGet := func(path string, port int) *httpGetAction {
		return &httpGetAction{Path: path, Port: port, Scheme: "HTTP"}
	}
	ctr := container{
		Args:            []string{"-conf", "/etc/coredns/Corefile"},
		Image:           c.Image,
		ImagePullPolicy: "Never",
		LivenessProbe: &probe{FailureThreshold: 5, HTTPGet: httpGet("/health", 8080), InitialDelaySeconds: 60,
			SuccessThreshold: 1, TimeoutSeconds: 5},
		Name:  "coredns",
		Ports: ports,
		// Probed every 2 s (upstream: 10 s) so that a new replica serves within
		// 2 s of being ready; 15 failures keep upstream's 30 s before it is
		// taken out of the Service.
		ReadinessProbe: &probe{FailureThreshold: 15, HTTPGet: httpGet("/ready", 8181), PeriodSeconds: 2},
		Resources: resources{
			Limits:   map[string]string{"memory": "170Mi"},
			Requests: map[string]string{"cpu": "100m", "memory": "70Mi"},
		},
		SecurityContext: &securityContext{
			AllowPrivilegeEscalation: new(false),
			Capabilities:             &capabilities{Add: []string{"NET_BIND_SERVICE"}, Drop: []string{"ALL"}},
			ReadOnlyRootFilesystem:   true,
		},
		VolumeMounts: []volumeMount{{MountPath: "/etc/coredns", Name: "config-volume", ReadOnly: true}},
	}
	volumes := []volume{{
		ConfigMap: &configMapVolume{Items: []keyToPath{{Key: "Corefile", Path: "Corefile"}}, Name: "coredns"},
		Name:      "config-volume",
	}}
	if c.BinDir != "" {
		m, v := binariesVolume(c.BinDir)
		ctr.VolumeMounts = append([]volumeMount{m}, ctr.VolumeMounts...)
		volumes = append(volumes, v)
	}
	// Spread replicas over nodes when there are several, as kubeadm does.
	spread := &affinity{PodAntiAffinity: &podAntiAffinity{Preferred: []weightedPodAffinityTerm{{
		PodAffinityTerm: podAffinityTerm{
			LabelSelector: &labelSelector{MatchExpressions: []labelSelectorRequirement{{Key: "k8s-app", Operator: "In", Values: []string{"kube-dns"}}}},
			TopologyKey:   "kubernetes.io/hostname",
		},
		Weight: 100,
	}}}}
	return deployment{
		typeMeta: typeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: objectMeta{Labels: coreDNSLabels(), Name: "coredns", Namespace: "kube-system"},
		Spec: deploymentSpec{
			Replicas: c.Replicas,
			Selector: labelSelector{MatchLabels: coreDNSLabels()},
			Strategy: deploymentStrategy{RollingUpdate: &rollingUpdate{MaxUnavailable: 1}, Type: "RollingUpdate"},
			Template: podTemplate{
				Metadata: objectMeta{Labels: coreDNSLabels()},
				Spec: podSpec{
					Affinity:   spread,
					Containers: []container{ctr},
					// Default: the node's resolv.conf, which forward reads (see corefile).
					DNSPolicy:          "Default",
					NodeSelector:       map[string]string{"kubernetes.io/os": "linux"},
					PriorityClassName:  "system-cluster-critical",
					ServiceAccountName: "coredns",
					Tolerations: []toleration{{Key: "CriticalAddonsOnly", Operator: "Exists"},
						{Effect: "NoSchedule", Key: "node-role.kubernetes.io/control-plane"}},
					Volumes: volumes,
				},
			},
		},
	}
}

func coreDNSService(ip netip.Addr) service {
	port := func(name string, n int, proto string) servicePort {
		return servicePort{Name: name, Port: n, Protocol: proto, TargetPort: n}
	}
	return service{
		typeMeta: typeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: objectMeta{
			Annotations: map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
			Labels: map[string]string{
				"k8s-app":                       "kube-dns",
				"kubernetes.io/cluster-service": "true",
				"kubernetes.io/name":            "CoreDNS",
			},
			Name:      "kube-dns",
			Namespace: "kube-system",
		},
		Spec: serviceSpec{
			ClusterIP: ip.String(),
			Ports:     []servicePort{port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP"), port("metrics", 9153, "TCP")},
			Selector:  coreDNSLabels(),
		},
	}
}
