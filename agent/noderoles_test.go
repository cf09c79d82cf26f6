package agent

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"knode.dev/knode/kubeapi"
	"knode.dev/knode/pki"
)

func TestMarkMaster(t *testing.T) {
	node := corev1.Node{}
	node.Name, node.ResourceVersion = "m0", "41"
	node.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}
	var patches []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/m0" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodPatch {
			var p map[string]any
			json.NewDecoder(r.Body).Decode(&p)
			b, _ := json.Marshal(p)
			patches = append(patches, string(b))
			// What the apiserver does with a merge patch, for this test's fields.
			var typed corev1.Node
			json.Unmarshal(b, &typed)
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			for k, v := range typed.Labels {
				node.Labels[k] = v
			}
			if typed.Spec.Taints != nil {
				node.Spec.Taints = typed.Spec.Taints
			}
		}
		json.NewEncoder(w).Encode(node)
	}))
	defer srv.Close()
	ca, _ := pki.NewCA("t", time.Now())
	cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "kubernetes-admin", Client: true}, time.Now())
	api, err := kubeapi.New(srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), cred.CertPEM, cred.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := markMaster(ctx, api, "m0", false); err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""},"resourceVersion":"41"}}`
	if len(patches) != 1 || patches[0] != want {
		t.Errorf("label patch: %q, want %q", patches, want)
	}
	markMaster(ctx, api, "m0", false)
	if len(patches) != 1 {
		t.Errorf("a labelled master was patched again: %q", patches)
	}
	// Tainting keeps the taints the Node has.
	if err := markMaster(ctx, api, "m0", true); err != nil {
		t.Fatal(err)
	}
	if len(node.Spec.Taints) != 2 || node.Spec.Taints[0].Key != "node.kubernetes.io/not-ready" || node.Spec.Taints[1].Key != ControlPlaneRole ||
		node.Spec.Taints[1].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("taints %+v", node.Spec.Taints)
	}
	markMaster(ctx, api, "m0", true)
	if len(patches) != 2 {
		t.Errorf("a marked master was patched again: %q", patches)
	}
	if err := markMaster(ctx, api, "m9", false); err == nil {
		t.Error("an unregistered Node was reported marked")
	}
}
