package manifests

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCoreDNSGolden(t *testing.T) {
	golden(t, "coredns.yaml", CoreDNSAddon(CoreDNS{
		Image:     "knode.local/coredns:v1.14.7",
		BinDir:    "/opt/knode/bin",
		ClusterIP: ClusterDNS(netip.MustParsePrefix("10.96.0.0/12")),
		Domain:    "cluster.local",
	}))
}

// coreDNSObjects renders the addon and decodes its documents strictly into
// the upstream types, in the order kubectl applies them.
type coreDNSObjects struct {
	sa         corev1.ServiceAccount
	role       rbacv1.ClusterRole
	binding    rbacv1.ClusterRoleBinding
	cm         corev1.ConfigMap
	deployment appsv1.Deployment
	svc        corev1.Service
}

func decodeCoreDNS(t *testing.T, c CoreDNS) coreDNSObjects {
	t.Helper()
	docs := splitDocs(t, CoreDNSAddon(c))
	var o coreDNSObjects
	into := []struct {
		out  any
		want metav1.TypeMeta
	}{
		{&o.sa, meta("v1", "ServiceAccount")},
		{&o.role, meta("rbac.authorization.k8s.io/v1", "ClusterRole")},
		{&o.binding, meta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")},
		{&o.cm, meta("v1", "ConfigMap")},
		{&o.deployment, meta("apps/v1", "Deployment")},
		{&o.svc, meta("v1", "Service")},
	}
	if len(docs) != len(into) {
		t.Fatalf("%d documents, want %d", len(docs), len(into))
	}
	for i, d := range into {
		if err := decodeStrict(docs[i], d.out, d.want); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, docs[i])
		}
	}
	return o
}

func TestCoreDNSAddon(t *testing.T) {
	c := CoreDNS{Image: "knode.local/coredns:v9", ClusterIP: netip.MustParseAddr("172.20.5.10"), Domain: "k8s.example", Replicas: 3}
	o := decodeCoreDNS(t, c)
	for _, m := range []metav1.ObjectMeta{o.sa.ObjectMeta, o.cm.ObjectMeta, o.deployment.ObjectMeta, o.svc.ObjectMeta} {
		if m.Namespace != "kube-system" {
			t.Errorf("%s is in namespace %q, want kube-system", m.Name, m.Namespace)
		}
	}
	if o.sa.Name != "coredns" || o.role.Name != "system:coredns" || o.binding.Name != "system:coredns" || o.cm.Name != "coredns" ||
		o.deployment.Name != "coredns" || o.svc.Name != "kube-dns" {
		t.Errorf("names: %s %s %s %s %s %s", o.sa.Name, o.role.Name, o.binding.Name, o.cm.Name, o.deployment.Name, o.svc.Name)
	}
	if o.binding.RoleRef.Name != o.role.Name || len(o.binding.Subjects) != 1 || o.binding.Subjects[0].Name != o.sa.Name {
		t.Errorf("binding %+v does not bind %s to %s", o.binding, o.sa.Name, o.role.Name)
	}
	if cf := o.cm.Data["Corefile"]; !strings.Contains(cf, "\n    kubernetes k8s.example in-addr.arpa ip6.arpa {\n") {
		t.Errorf("Corefile does not serve k8s.example:\n%s", cf)
	}
	if o.svc.Spec.ClusterIP != "172.20.5.10" {
		t.Errorf("Service clusterIP = %s, want 172.20.5.10", o.svc.Spec.ClusterIP)
	}
	spec := o.deployment.Spec
	if spec.Replicas == nil || *spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", spec.Replicas)
	}
	if got := spec.Template.Labels["k8s-app"]; got != "kube-dns" || o.svc.Spec.Selector["k8s-app"] != got || spec.Selector.MatchLabels["k8s-app"] != got {
		t.Errorf("pod label k8s-app = %q; Service and Deployment must select it", got)
	}
	pod := spec.Template.Spec
	if pod.DNSPolicy != corev1.DNSDefault || pod.ServiceAccountName != o.sa.Name || pod.PriorityClassName != "system-cluster-critical" {
		t.Errorf("pod dnsPolicy %q, serviceAccountName %q, priorityClassName %q", pod.DNSPolicy, pod.ServiceAccountName, pod.PriorityClassName)
	}
	ctr := pod.Containers[0]
	if ctr.Image != c.Image || ctr.ImagePullPolicy != corev1.PullNever || strings.Join(ctr.Args, " ") != "-conf /etc/coredns/Corefile" {
		t.Errorf("container image %s, pull %s, args %q", ctr.Image, ctr.ImagePullPolicy, ctr.Args)
	}
	if got := ctr.Resources.Limits.Memory().String(); got != "170Mi" {
		t.Errorf("memory limit %s, want 170Mi", got)
	}
	if pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != o.cm.Name {
		t.Errorf("the Corefile volume does not mount ConfigMap %s: %+v", o.cm.Name, pod.Volumes[0])
	}
}

func TestCoreDNSDefaults(t *testing.T) {
	o := decodeCoreDNS(t, CoreDNS{Image: "i", ClusterIP: netip.MustParseAddr("10.0.0.10")})
	if r := o.deployment.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("replicas = %v, want 1", r)
	}
	if c := o.cm.Data["Corefile"]; !strings.Contains(c, "kubernetes cluster.local in-addr.arpa") {
		t.Errorf("Corefile does not default to cluster.local:\n%s", c)
	}
}

// TestCorefilePlugins keeps the Corefile to the plugins knode's CoreDNS
// build compiles in (release/build/kube/coredns.go); any other directive would
// stop CoreDNS at startup.
func TestCorefilePlugins(t *testing.T) {
	built := []string{"kubernetes", "forward", "cache", "errors", "health", "ready", "loop", "reload", "loadbalance", "log", "prometheus"}
	depth := 0
	for line := range strings.Lines(corefile("cluster.local")) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if depth == 1 && f[0] != "}" && !slices.Contains(built, f[0]) {
			t.Errorf("Corefile uses plugin %q, not in knode's CoreDNS build", f[0])
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
	}
	if depth != 0 {
		t.Errorf("Corefile braces unbalanced (depth %d at the end)", depth)
	}
}
