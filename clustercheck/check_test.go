package clustercheck

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"knode.dev/knode/kubeapi"
	"knode.dev/knode/pki"
)

// apiserver plays the apiserver and the kubelets for the check's objects:
// created pods become Ready (echo) or end (clients) at once; a client whose
// target is in fail exits 1.
type apiserver struct {
	mu      sync.Mutex
	nodes   []corev1.Node
	ns      string
	deleted bool
	pods    map[string]corev1.Pod
	fail    string
}

func (a *apiserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/api/v1/nodes":
		json.NewEncoder(w).Encode(corev1.NodeList{Items: a.nodes})
	case p == "/api/v1/namespaces" && r.Method == http.MethodPost:
		var ns corev1.Namespace
		json.NewDecoder(r.Body).Decode(&ns)
		a.ns = ns.Name
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(ns)
	case a.ns == "" || !strings.HasPrefix(p, "/api/v1/namespaces/"+a.ns):
		http.NotFound(w, r)
	case p == "/api/v1/namespaces/"+a.ns && r.Method == http.MethodDelete:
		a.deleted = true
	case a.deleted:
		http.NotFound(w, r)
	case strings.HasSuffix(p, "/serviceaccounts/default"):
		w.Write([]byte(`{}`))
	case strings.HasSuffix(p, "/services"):
		var s corev1.Service
		json.NewDecoder(r.Body).Decode(&s)
		s.Spec.ClusterIP = "10.0.0.77"
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(s)
	case strings.HasSuffix(p, "/pods") && r.Method == http.MethodPost:
		var pod corev1.Pod
		if err := json.NewDecoder(r.Body).Decode(&pod); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		pod.Spec.NodeName = pod.Spec.NodeSelector["kubernetes.io/hostname"]
		st := corev1.ContainerStatus{Name: pod.Spec.Containers[0].Name}
		if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			code := int32(0)
			if strings.Contains(strings.Join(pod.Spec.Containers[0].Command, " "), a.fail) {
				code = 1
			}
			st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: code, Message: "some output\nerror: dial tcp: i/o timeout"}
		} else {
			pod.Status.PodIP = "10.10.9." + pod.Name[len(pod.Name)-1:]
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		a.pods[pod.Name] = pod
		w.WriteHeader(http.StatusCreated)
	case strings.HasSuffix(p, "/pods"):
		var list corev1.PodList
		for _, pod := range a.pods {
			list.Items = append(list.Items, pod)
		}
		json.NewEncoder(w).Encode(list)
	default:
		w.Write([]byte(`{}`))
	}
}

func node(name string, ready corev1.ConditionStatus) corev1.Node {
	n := corev1.Node{}
	n.Name = name
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	return n
}

func TestRunChecksEveryNodeAndCleansUp(t *testing.T) {
	fake := &apiserver{pods: map[string]corev1.Pod{}, fail: "http://10.0.0.77:8080",
		nodes: []corev1.Node{node("n1", corev1.ConditionTrue), node("n2", corev1.ConditionTrue), node("n3", corev1.ConditionFalse)}}
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()
	ca, _ := pki.NewCA("t", time.Now())
	cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "admin", Client: true}, time.Now())
	api, err := kubeapi.New(srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), cred.CertPEM, cred.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{API: api, Image: "img", BinDir: "/opt/knode/bin", Domain: "cluster.local", Timeout: 5 * time.Second, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	var names []string
	for _, r := range res {
		got[r.Name] = r
		names = append(names, r.Name)
	}
	for name, ok := range map[string]bool{
		"node n3 Ready": false, "pod on n1 running": true, "pod on n2 running": true,
		"pod to pod: n1 -> n2": true, "pod to pod: n2 -> n1": true,
		"Service echo by cluster IP 10.0.0.77": false, "Service echo by DNS name (cluster DNS)": true,
	} {
		r, found := got[name]
		if !found || r.OK != ok {
			t.Errorf("%q: %+v (found %v), want ok=%v; all: %q", name, r, found, ok, names)
		}
	}
	if d := got["Service echo by cluster IP 10.0.0.77"].Detail; d != "exit 1: error: dial tcp: i/o timeout" {
		t.Errorf("failure detail %q", d)
	}
	last := res[len(res)-1]
	if !strings.HasPrefix(last.Name, "cleanup: namespace knode-check-") || !last.OK || !fake.deleted {
		t.Errorf("cleanup: %+v, deleted %v", last, fake.deleted)
	}
	// The DNS client asks for the Service's name in the check's namespace.
	dns := fake.pods["dns"].Spec.Containers[0].Command
	if !strings.Contains(strings.Join(dns, " "), "--server=http://echo."+fake.ns+".svc.cluster.local:8080") {
		t.Errorf("dns client: %q", dns)
	}
}

func TestRunNeedsAReadyNode(t *testing.T) {
	fake := &apiserver{pods: map[string]corev1.Pod{}, nodes: []corev1.Node{node("n1", corev1.ConditionUnknown)}}
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()
	ca, _ := pki.NewCA("t", time.Now())
	cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "admin", Client: true}, time.Now())
	api, _ := kubeapi.New(srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), cred.CertPEM, cred.KeyPEM)
	if _, err := Run(context.Background(), Options{API: api}); err == nil || fake.ns != "" {
		t.Errorf("err %v, namespace %q", err, fake.ns)
	}
}
