package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes one YAML document into out, an upstream API type, as
// Kubernetes' strict decoding does: field names match case-sensitively, and
// unknown or duplicate fields are errors. So a field misspelt in this
// package's mirrors (failSwapon) fails here, where the kubelet would ignore
// it. want is the document's apiVersion and kind.
func decodeStrict(doc []byte, out any, want metav1.TypeMeta) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, out, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err := errors.Join(append(strict, err)...); err != nil {
		return fmt.Errorf("decode into %T: %w", out, err)
	}
	var got metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%T: apiVersion %q kind %q, want %q %q", out, got.APIVersion, got.Kind, want.APIVersion, want.Kind)
	}
	return nil
}

// splitDocs splits a multi-document stream as joinDocs wrote it.
func splitDocs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatal("stream does not end in a newline")
	}
	return bytes.Split(b, []byte("\n---\n"))
}

func meta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// TestArtefactsDecodeStrictly decodes every rendered YAML artefact into its
// upstream type.
func TestArtefactsDecodeStrictly(t *testing.T) {
	cp := controlPlane()
	kubelet := Kubelet{ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), ClusterDomain: "cluster.local",
		PodCIDR: netip.MustParsePrefix("10.10.1.0/24"), MaxPods: 110, CgroupDriver: "systemd", CgroupV1: true,
		ClientCAFile: "/etc/kubernetes/pki/ca.crt", StaticPodPath: "/etc/kubernetes/manifests",
		RuntimeEndpoint: "unix:///run/containerd/containerd.sock", ResolvConf: "/etc/resolv.conf", TLSCertFile: "/c", TLSKeyFile: "/k"}
	tests := []struct {
		name string
		doc  []byte
		into any
		want metav1.TypeMeta
	}{
		{"etcd", EtcdPod(cp), &corev1.Pod{}, meta("v1", "Pod")},
		{"apiserver", APIServerPod(cp), &corev1.Pod{}, meta("v1", "Pod")},
		{"controller-manager", ControllerManagerPod(cp), &corev1.Pod{}, meta("v1", "Pod")},
		{"scheduler", SchedulerPod(cp), &corev1.Pod{}, meta("v1", "Pod")},
		{"kubelet", KubeletConfig(kubelet), &kubeletv1beta1.KubeletConfiguration{}, meta("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration")},
		{"kube-proxy", KubeProxyConfig(KubeProxy{Kubeconfig: "/k", ClusterCIDR: netip.MustParsePrefix("10.10.0.0/16"), Hostname: "m1", InContainer: true}),
			&kubeproxyv1alpha1.KubeProxyConfiguration{}, meta("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")},
		{"encryption-config", EncryptionConfig(make([]byte, 32)), &apiserverv1.EncryptionConfiguration{}, meta("apiserver.config.k8s.io/v1", "EncryptionConfiguration")},
		{"audit-policy", AuditPolicy(), &auditv1.Policy{}, meta("audit.k8s.io/v1", "Policy")},
		{"admin-binding", AdminBinding(), &rbacv1.ClusterRoleBinding{}, meta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")},
		{"kubeconfig", KubeconfigFile(Kubeconfig{Cluster: "demo", Server: "https://172.31.0.2:6443", CAPEM: []byte("ca"), User: "u", CertPEM: []byte("c"), KeyPEM: []byte("k")}),
			&clientcmdv1.Config{}, meta("v1", "Config")},
	}
	// The CoreDNS addon's six objects (decodeCoreDNS fails the test on any).
	decodeCoreDNS(t, CoreDNS{Image: "i", ClusterIP: netip.MustParseAddr("10.0.0.10")})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := decodeStrict(tt.doc, tt.into, tt.want); err != nil {
				t.Errorf("%v\n%s", err, tt.doc)
			}
		})
	}
}

// TestDecodeStrictCatchesMisspelling shows that the check above fails on a
// misspelt field, so that it means something.
func TestDecodeStrictCatchesMisspelling(t *testing.T) {
	kc := KubeletConfig(Kubelet{ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"), PodCIDR: netip.MustParsePrefix("10.10.1.0/24")})
	pod := SchedulerPod(controlPlane())
	for _, tt := range []struct {
		doc      []byte
		from, to string
		into     any
		want     metav1.TypeMeta
	}{
		{kc, "failSwapOn:", "failSwapon:", &kubeletv1beta1.KubeletConfiguration{}, meta("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration")},
		{pod, "imagePullPolicy:", "imagePulPolicy:", &corev1.Pod{}, meta("v1", "Pod")},
		{pod, "hostNetwork: true", "hostNetwork: \"yes\"", &corev1.Pod{}, meta("v1", "Pod")},
		{pod, "kind: Pod", "kind: Deployment", &corev1.Pod{}, meta("v1", "Pod")},
	} {
		if !bytes.Contains(tt.doc, []byte(tt.from)) {
			t.Fatalf("%q not in\n%s", tt.from, tt.doc)
		}
		bad := bytes.Replace(tt.doc, []byte(tt.from), []byte(tt.to), 1)
		if err := decodeStrict(bad, tt.into, tt.want); err == nil {
			t.Errorf("%s -> %s: decoded without error", tt.from, tt.to)
		}
	}
}

// TestStaticPodsAsUpstream checks, on the decoded upstream Pod, what the
// kubelet acts on.
func TestStaticPodsAsUpstream(t *testing.T) {
	cp := controlPlane()
	for name, doc := range map[string][]byte{"etcd": EtcdPod(cp), "kube-apiserver": APIServerPod(cp),
		"kube-controller-manager": ControllerManagerPod(cp), "kube-scheduler": SchedulerPod(cp)} {
		var p corev1.Pod
		if err := decodeStrict(doc, &p, meta("v1", "Pod")); err != nil {
			t.Fatal(err)
		}
		c := p.Spec.Containers[0]
		if p.Name != name || p.Namespace != "kube-system" || !p.Spec.HostNetwork || p.Spec.PriorityClassName != "system-node-critical" {
			t.Errorf("%s: pod %s/%s hostNetwork %v priorityClass %q", name, p.Namespace, p.Name, p.Spec.HostNetwork, p.Spec.PriorityClassName)
		}
		if c.ImagePullPolicy != corev1.PullNever || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil {
			t.Errorf("%s: pull policy %q, liveness %+v", name, c.ImagePullPolicy, c.LivenessProbe)
		}
		// A slow machine (the VM lab under TCG) gets ten minutes before the first answer; the
		// startup probe checks what liveness checks, and liveness starts only after it.
		if sp, lp := c.StartupProbe, c.LivenessProbe; sp == nil || lp == nil || sp.HTTPGet == nil || lp.HTTPGet == nil ||
			!reflect.DeepEqual(sp.HTTPGet, lp.HTTPGet) || sp.InitialDelaySeconds+sp.FailureThreshold*sp.PeriodSeconds < 600 {
			t.Errorf("%s: startup probe %+v for liveness %+v", name, sp, lp)
		}
		if got := c.Resources.Requests.Cpu().String(); got != "100m" {
			t.Errorf("%s: cpu request %s", name, got)
		}
		want := append(append([]string{}, cp.Command...), name)
		if strings.Join(c.Command[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("%s: command %q", name, c.Command)
		}
		if len(c.VolumeMounts) != len(p.Spec.Volumes) {
			t.Errorf("%s: %d mounts for %d volumes", name, len(c.VolumeMounts), len(p.Spec.Volumes))
		}
		for i, v := range p.Spec.Volumes {
			// Host paths are mounted at the same path, except the staged
			// binaries: read-only at PodBinDir.
			if v.Name == "knode-bin" && (!c.VolumeMounts[i].ReadOnly || c.VolumeMounts[i].MountPath != PodBinDir) {
				t.Errorf("%s: binaries mounted as %+v", name, c.VolumeMounts[i])
				continue
			}
			if v.HostPath == nil || v.Name != "knode-bin" && v.HostPath.Path != c.VolumeMounts[i].MountPath || v.Name != c.VolumeMounts[i].Name {
				t.Errorf("%s: volume %+v does not match mount %+v", name, v, c.VolumeMounts[i])
			}
		}
	}
}

// TestKubeletAndProxyAsUpstream checks the decoded configurations.
func TestKubeletAndProxyAsUpstream(t *testing.T) {
	var kc kubeletv1beta1.KubeletConfiguration
	doc := KubeletConfig(Kubelet{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12"), PodCIDR: netip.MustParsePrefix("10.10.1.0/24"),
		MaxPods: 29, CgroupV1: true, ClusterDomain: "cluster.local"})
	if err := decodeStrict(doc, &kc, meta("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration")); err != nil {
		t.Fatal(err)
	}
	if kc.FailSwapOn == nil || *kc.FailSwapOn || kc.FailCgroupV1 == nil || *kc.FailCgroupV1 || kc.MaxPods != 29 ||
		strings.Join(kc.ClusterDNS, ",") != "10.96.0.10" || kc.Authentication.Anonymous.Enabled == nil || *kc.Authentication.Anonymous.Enabled {
		t.Errorf("kubelet configuration decoded as %+v", kc)
	}
	var kp kubeproxyv1alpha1.KubeProxyConfiguration
	doc = KubeProxyConfig(KubeProxy{ClusterCIDR: netip.MustParsePrefix("10.10.0.0/16"), InContainer: true})
	if err := decodeStrict(doc, &kp, meta("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")); err != nil {
		t.Fatal(err)
	}
	if kp.Mode != "iptables" || kp.Conntrack.MaxPerCore == nil || *kp.Conntrack.MaxPerCore != 0 {
		t.Errorf("kube-proxy configuration decoded as %+v", kp)
	}
	doc = KubeProxyConfig(KubeProxy{ClusterCIDR: netip.MustParsePrefix("10.10.0.0/16")})
	kp = kubeproxyv1alpha1.KubeProxyConfiguration{}
	if err := decodeStrict(doc, &kp, meta("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")); err != nil || kp.Conntrack.MaxPerCore != nil {
		t.Errorf("outside a container, conntrack maxPerCore must stay unset: %v %v", kp.Conntrack.MaxPerCore, err)
	}
}

// TestKubeconfigAsUpstream checks that the embedded credentials survive.
func TestKubeconfigAsUpstream(t *testing.T) {
	var c clientcmdv1.Config
	doc := KubeconfigFile(Kubeconfig{Cluster: "demo", Server: "https://10.1.2.3:6443", CAPEM: []byte("CA PEM"), User: "admin",
		CertPEM: []byte("CERT"), KeyPEM: []byte("KEY")})
	if err := decodeStrict(doc, &c, meta("v1", "Config")); err != nil {
		t.Fatal(err)
	}
	if len(c.Clusters) != 1 || string(c.Clusters[0].Cluster.CertificateAuthorityData) != "CA PEM" || c.Clusters[0].Cluster.Server != "https://10.1.2.3:6443" ||
		len(c.AuthInfos) != 1 || string(c.AuthInfos[0].AuthInfo.ClientCertificateData) != "CERT" || string(c.AuthInfos[0].AuthInfo.ClientKeyData) != "KEY" ||
		c.CurrentContext != "admin@demo" || len(c.Contexts) != 1 || c.Contexts[0].Context.Cluster != "demo" || c.Contexts[0].Context.AuthInfo != "admin" {
		t.Errorf("kubeconfig decoded as %+v", c)
	}
}
