package kubeapi_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"knode.dev/knode/kubeapi"
	"knode.dev/knode/kubeapi/kubeapitest"
	"knode.dev/knode/manifests"
)

func client(t *testing.T, s *kubeapitest.Server, user string) *kubeapi.Client {
	t.Helper()
	c, err := s.Client(user)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Each failure is told apart: not found, conflict, unauthorised, invalid,
// unreachable; and the error names the request and the server's reason.
func TestErrorsToldApart(t *testing.T) {
	s := kubeapitest.New(t)
	api := client(t, s, "admin")
	ctx := context.Background()
	kinds := map[string]func(error) bool{"notfound": kubeapi.IsNotFound, "conflict": kubeapi.IsConflict,
		"unauthorised": kubeapi.IsUnauthorized, "invalid": kubeapi.IsInvalid, "unreachable": kubeapi.IsUnreachable}
	only := func(t *testing.T, err error, want string) {
		t.Helper()
		for k, is := range kinds {
			if is(err) != (k == want) {
				t.Errorf("%v: Is %s = %v", err, k, is(err))
			}
		}
	}

	_, err := api.GetNode(ctx, "n1")
	only(t, err, "notfound")
	if !strings.Contains(err.Error(), `GET /api/v1/nodes/n1: HTTP 404 NotFound: nodes "n1" not found`) {
		t.Errorf("message: %v", err)
	}
	only(t, api.DeleteNode(ctx, "n1"), "notfound")
	only(t, api.SetPodCIDR(ctx, "n1", "10.10.1.0/24"), "notfound")

	s.Register("n1")
	if err := api.SetPodCIDR(ctx, "n1", "10.10.1.0/24"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Node("n1"); n.Spec.PodCIDR != "10.10.1.0/24" || len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != "10.10.1.0/24" {
		t.Errorf("podCIDR patch gave %+v", n.Spec)
	}
	if err := api.SetPodCIDR(ctx, "n1", "10.10.1.0/24"); err != nil {
		t.Errorf("the same podCIDR again: %v", err)
	}
	only(t, api.SetPodCIDR(ctx, "n1", "10.10.2.0/24"), "invalid")

	// A patch with an old resourceVersion.
	err = api.Call(ctx, http.MethodPatch, "/api/v1/nodes/n1", kubeapi.MergePatch, []byte(`{"metadata":{"resourceVersion":"1"}}`), nil)
	only(t, err, "conflict")

	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		s.Fail("GET /api/v1/nodes/n1", code)
		_, err = api.GetNode(ctx, "n1")
		only(t, err, "unauthorised")
	}
	s.Fail("GET /api/v1/nodes/n1", 0)

	s.SetReady(false)
	err = api.Readyz(ctx)
	var e *kubeapi.Error
	if !errors.As(err, &e) || e.Code != 500 || !strings.Contains(e.Message, "readyz check failed") {
		t.Errorf("readyz of a server not ready: %v", err)
	}
	s.SetReady(true)
	if err := api.Readyz(ctx); err != nil {
		t.Errorf("readyz: %v", err)
	}
	if err := api.DeleteNode(ctx, "n1"); err != nil || len(s.Deleted()) != 1 {
		t.Errorf("delete: %v, deleted %v", err, s.Deleted())
	}

	// Nobody listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ca, cert, key := s.PEMs(t, "u")
	gone, err := kubeapi.New("https://"+addr, ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	err = gone.Readyz(ctx)
	only(t, err, "unreachable")
	if !strings.Contains(err.Error(), "GET /readyz: apiserver unreachable") {
		t.Errorf("message: %v", err)
	}
	// Do keeps its contract: a non-2xx answer is a status, not an error.
	if code, err := api.Do(ctx, http.MethodGet, "/api/v1/nodes/none", "", nil, nil); code != 404 || err != nil {
		t.Errorf("Do: %d, %v", code, err)
	}
}

// The addon objects go to their REST paths by server-side apply, as
// field manager "knode", forcing conflicts, with the rendered YAML.
func TestApply(t *testing.T) {
	objs := append(manifests.CoreDNSObjects(manifests.CoreDNS{Image: "i"}), manifests.AdminBindingObject())
	want := []string{
		"/api/v1/namespaces/kube-system/serviceaccounts/coredns",
		"/apis/rbac.authorization.k8s.io/v1/clusterroles/system:coredns",
		"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:coredns",
		"/api/v1/namespaces/kube-system/configmaps/coredns",
		"/apis/apps/v1/namespaces/kube-system/deployments/coredns",
		"/api/v1/namespaces/kube-system/services/kube-dns",
		"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/knode:cluster-admins",
	}
	s := kubeapitest.New(t)
	api := client(t, s, "admin")
	for _, o := range objs {
		if err := api.Apply(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Applied()
	if len(got) != len(want) {
		t.Fatalf("%d applies, want %d", len(got), len(want))
	}
	for i, a := range got {
		if a.Path != want[i] || a.FieldManager != "knode" || !a.Force || string(a.Body) != string(objs[i].YAML) {
			t.Errorf("apply %d: %s as %q force %v, want %s as knode with force and its YAML", i, a.Path, a.FieldManager, a.Force, want[i])
		}
	}

	for _, tt := range []struct {
		o    manifests.Object
		want string
	}{
		{manifests.Object{APIVersion: "v1", Kind: "Secret", Namespace: "x", Name: "s"}, "kind not known"},
		{manifests.Object{APIVersion: "v1", Kind: "ConfigMap", Name: "c"}, `namespace "" does not fit`},
		{manifests.Object{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Namespace: "x", Name: "r"}, `namespace "x" does not fit`},
		{manifests.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "x"}, "no name"},
	} {
		if err := api.Apply(context.Background(), tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Apply(%+v) = %v, want %q", tt.o, err, tt.want)
		}
	}
	s.Fail("PATCH /api/v1/namespaces/kube-system/configmaps/coredns", http.StatusForbidden)
	err := api.Apply(context.Background(), objs[3])
	if !kubeapi.IsUnauthorized(err) || !strings.Contains(err.Error(), "apply ConfigMap kube-system/coredns") {
		t.Errorf("a refused apply: %v", err)
	}
}
