package kubeapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"knode.dev/knode/manifests"
)

// The subset types must read what the upstream types write.
func TestNodeMatchesUpstream(t *testing.T) {
	up := corev1.Node{}
	up.Name, up.Labels = "n1", map[string]string{"a": "b"}
	up.Spec.PodCIDR, up.Spec.PodCIDRs = "10.10.1.0/24", []string{"10.10.1.0/24"}
	up.Spec.Taints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
	up.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady"}}
	up.Status.NodeInfo.KubeletVersion, up.Status.NodeInfo.ContainerRuntimeVersion = "v1.36.3", "containerd://2.4.2"
	b, _ := json.Marshal(up)
	var n Node
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	ready, why := n.Ready()
	if n.Metadata.Name != "n1" || n.Metadata.Labels["a"] != "b" || n.Spec.PodCIDR != "10.10.1.0/24" || len(n.Spec.Taints) != 1 ||
		n.Spec.Taints[0] != (Taint{Key: "k", Value: "v", Effect: "NoSchedule"}) || ready || why != "Ready=False (KubeletNotReady)" ||
		n.Status.NodeInfo.KubeletVersion != "v1.36.3" || n.Status.NodeInfo.ContainerRuntimeVersion != "containerd://2.4.2" {
		t.Errorf("read %+v (ready %v %q)", n, ready, why)
	}
	// And what they write reads back upstream.
	b, _ = json.Marshal(n)
	var back corev1.Node
	if err := json.Unmarshal(b, &back); err != nil || back.Spec.Taints[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("upstream read %+v: %v", back, err)
	}
}

func TestClientFromKubeconfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && r.Header.Get("Content-Type") != "application/merge-patch+json" {
			http.Error(w, "bad type", http.StatusUnsupportedMediaType)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": "n1"}})
	}))
	defer srv.Close()
	caPEM := certPEM(srv.Certificate().Raw)
	dir := t.TempDir()
	kc := filepath.Join(dir, "kc")
	// The test server asks for no client certificate; any pair will do.
	cert, key := testPair(t)
	os.WriteFile(kc, manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: "c", Server: srv.URL, CAPEM: caPEM, User: "u", CertPEM: cert, KeyPEM: key}), 0o600)
	c, err := FromKubeconfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var n Node
	if code, err := c.Get(context.Background(), "/api/v1/nodes/n1", &n); code != 200 || err != nil || n.Metadata.Name != "n1" {
		t.Errorf("get: %d %v %+v", code, err, n)
	}
	if code, err := c.Do(context.Background(), http.MethodPatch, "/api/v1/nodes/n1", "application/merge-patch+json", map[string]any{}, nil); code != 200 || err != nil {
		t.Errorf("patch: %d %v", code, err)
	}
	// A server signed by another CA is refused.
	other, _ := testPair(t) // a certificate of another CA, used as the root
	c2, err := New(srv.URL, other, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Get(context.Background(), "/", nil); err == nil {
		t.Error("a server outside the CA was trusted")
	}
	if _, err := New("http://x", caPEM, cert, key); err == nil {
		t.Error("plain http accepted")
	}
}
