package health

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// units is a fixed table of unit states.
type units map[string]string

func (u units) ActiveState(_ context.Context, unit string) (string, string, error) {
	if st, ok := u[unit]; ok {
		a, s, _ := strings.Cut(st, "/")
		return a, s, nil
	}
	return "", "", errors.New("no bus")
}

// node is a fake host: a containerd socket, HTTP health endpoints and an
// apiserver (TLS under a test CA) serving one Node object.
type node struct {
	probe   *Probe
	units   units
	healthy map[string]bool // endpoint name -> answers 200
	ready   string          // the Node's Ready status
	etcd    string          // etcd's /health body
	caPEM   []byte          // what the kubeconfig trusts
	reads   atomic.Int32    // GETs of the Node
}

func newNode(t *testing.T) *node {
	t.Helper()
	n := &node{units: units{"containerd.service": "active/running", "kubelet.service": "active/running", "kube-proxy.service": "active/running"},
		healthy: map[string]bool{"kubelet": true, "cm": true, "sched": true, "readyz": true}, ready: "True", etcd: `{"health":"true","reason":""}`}
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	mux := http.NewServeMux()
	for _, name := range []string{"kubelet", "cm", "sched", "readyz"} {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, _ *http.Request) {
			if !n.healthy[name] {
				http.Error(w, "no", http.StatusServiceUnavailable)
			}
		})
	}
	mux.HandleFunc("/etcd", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(n.etcd)) })
	mux.HandleFunc("/api/v1/nodes/n1", func(w http.ResponseWriter, _ *http.Request) {
		n.reads.Add(1)
		var obj kubeapi.Node
		obj.Metadata.Name = "n1"
		obj.Status.Conditions = []kubeapi.NodeCondition{{Type: "Ready", Status: n.ready, Reason: "KubeletNotReady"}}
		obj.Status.NodeInfo = kubeapi.NodeSystemInfo{KubeletVersion: "v1.36.3", ContainerRuntimeVersion: "containerd://v2.4.2"}
		json.NewEncoder(w).Encode(obj)
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(mux)
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are part of the test
	secure.StartTLS()
	t.Cleanup(secure.Close)
	n.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})
	ca, _ := pki.NewCA("t", time.Now())
	cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "system:node:n1", Client: true}, time.Now())
	n.probe = &Probe{Units: n.units, Timeout: time.Second,
		Endpoints: Endpoints{ContainerdSocket: sock, KubeletHealthz: plain.URL + "/kubelet", EtcdHealth: plain.URL + "/etcd",
			APIServerReadyz: secure.URL + "/readyz", ControllerManager: secure.URL + "/cm", Scheduler: secure.URL + "/sched"},
		Credentials: func() (manifests.Kubeconfig, error) {
			return manifests.Kubeconfig{Server: secure.URL, CAPEM: n.caPEM, CertPEM: cred.CertPEM, KeyPEM: cred.KeyPEM}, nil
		},
		Certs: func() []CertFile {
			return []CertFile{{"ca", time.Unix(2_000_000_000, 0)}, {"apiserver", time.Unix(1_900_000_000, 0)}}
		}}
	return n
}

func failing(h gossip.Health) string {
	var out []string
	for _, c := range h.Checks {
		if !c.OK {
			out = append(out, c.What.String()+": "+c.Detail)
		}
	}
	return strings.Join(out, "; ")
}

func TestProbeChecksEachComponent(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	h := n.probe.Check(ctx, "n1", true)
	if !h.Healthy() || len(h.Checks) != 8 || h.KubeletVersion != "v1.36.3" || h.RuntimeVersion != "containerd://v2.4.2" ||
		h.CertName != "apiserver" || h.CertExpiry != 1_900_000_000 {
		t.Fatalf("healthy master: %+v (%s)", h, failing(h))
	}
	if w := n.probe.Check(ctx, "n1", false); len(w.Checks) != 4 || !w.Healthy() {
		t.Errorf("worker: %+v", w)
	}
	for _, tc := range []struct {
		name   string
		breaks func()
		want   string
	}{
		{"kubelet stopped", func() { n.units["kubelet.service"] = "inactive/dead" }, "kubelet: kubelet.service inactive (dead)"},
		{"kubelet unhealthy", func() { n.healthy["kubelet"] = false }, "kubelet: 127.0.0.1:"},
		{"node not ready", func() { n.ready = "False" }, "node-ready: Ready=False (KubeletNotReady)"},
		{"no quorum", func() { n.etcd = `{"health":"false","reason":"RAFT NO LEADER"}` }, "etcd: etcd unhealthy: RAFT NO LEADER"},
		{"apiserver not ready", func() { n.healthy["readyz"] = false }, "apiserver: 127.0.0.1:"},
		{"scheduler down", func() { n.healthy["sched"] = false }, "scheduler: 127.0.0.1:"},
		{"no bus", func() { delete(n.units, "kube-proxy.service") }, "kube-proxy: kube-proxy.service: no bus"},
	} {
		n = newNode(t)
		tc.breaks()
		h := n.probe.Check(ctx, "n1", true)
		if h.Healthy() || !strings.Contains(failing(h), tc.want) || strings.Count(failing(h), ": ") > 3 {
			t.Errorf("%s: failing %q, want %q", tc.name, failing(h), tc.want)
		}
	}
	// The apiserver's certificate must be signed by the cluster CA.
	n = newNode(t)
	other, _ := pki.NewCA("other", time.Now())
	n.caPEM = other.CertPEM
	if h := n.probe.Check(ctx, "n1", true); !strings.Contains(failing(h), "apiserver: ") || !strings.Contains(failing(h), "certificate") {
		t.Errorf("apiserver outside the CA: %q", failing(h))
	}
}

func TestProbeReadsTheNodeAtItsOwnPace(t *testing.T) {
	n := newNode(t)
	n.probe.NodeEvery = time.Hour
	ctx := context.Background()
	first := n.probe.Check(ctx, "n1", false)
	n.ready = "False"
	second := n.probe.Check(ctx, "n1", false)
	if n.reads.Load() != 1 || !second.Healthy() || second.KubeletVersion != first.KubeletVersion {
		t.Errorf("%d reads; second check %+v", n.reads.Load(), second)
	}
	n.probe.NodeEvery = time.Nanosecond
	if h := n.probe.Check(ctx, "n1", false); h.Healthy() || n.reads.Load() != 2 {
		t.Errorf("after NodeEvery: %d reads, %+v", n.reads.Load(), h)
	}
}

func TestProbeSummaryIsAValidRecord(t *testing.T) {
	n := newNode(t)
	n.units["kubelet.service"] = "failed/" + strings.Repeat("\x1b", 200)
	h := n.probe.Check(context.Background(), "n1", true)
	for _, c := range h.Checks {
		if len(c.Detail) > 96 || strings.ContainsRune(c.Detail, 0x1b) {
			t.Errorf("detail not bounded or not printable: %q", c.Detail)
		}
	}
}

func TestCertsIn(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA("t", time.Now())
	os.MkdirAll(filepath.Join(dir, "etcd"), 0o700)
	os.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "etcd", "server.crt"), ca.CertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "ca.key"), ca.CertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "junk.crt"), []byte("no"), 0o600)
	got := CertsIn(dir, filepath.Join(dir, "missing"))
	if len(got) != 2 || got[0].Name != "ca" || got[1].Name != "etcd/server" || !got[0].NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("certs: %+v", got)
	}
}
