package health

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
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
	conns   atomic.Int32    // connections the endpoints accepted
	plain   *httptest.Server
	secure  *httptest.Server
}

func newNode(t testing.TB) *node {
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
	countConns := func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.conns.Add(1)
		}
	}
	plain := httptest.NewUnstartedServer(mux)
	plain.Config.ConnState = countConns
	plain.Start()
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(mux)
	secure.Config.ConnState = countConns
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are part of the test
	secure.StartTLS()
	t.Cleanup(secure.Close)
	n.plain, n.secure = plain, secure
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

// BenchmarkProbeCheck is one health check (every 2 s in each agent): the
// units, containerd's socket, the kubelet, the Node through the apiserver with
// the kubelet's credential (here in every check; the agent reads it every
// 10 s), the node's certificates on disk, and on a master etcd, the
// apiserver, the controller-manager and the scheduler. The fake endpoints'
// own work is in the figure too.
func BenchmarkProbeCheck(b *testing.B) {
	for _, master := range []bool{false, true} {
		b.Run(map[bool]string{false: "worker", true: "master"}[master], func(b *testing.B) {
			n := newNode(b)
			dir := b.TempDir()
			ca, _ := pki.NewCA("t", time.Now())
			for i := range 12 {
				cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: fmt.Sprint("c", i), Client: true}, time.Now())
				os.WriteFile(filepath.Join(dir, fmt.Sprint("c", i, ".crt")), cred.CertPEM, 0o600)
			}
			n.probe.Certs = func() []CertFile { return CertsIn(dir) }
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if h := n.probe.Check(ctx, "n1", master); failing(h) != "" {
					b.Fatal(failing(h))
				}
			}
		})
	}
}

// BenchmarkCertsIn: the expiry scan of the health check over 12 certificates,
// read and parsed each time, and through the cache the agent's probe keeps.
func BenchmarkCertsIn(b *testing.B) {
	dir := b.TempDir()
	ca, _ := pki.NewCA("t", time.Now())
	for i := range 12 {
		cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: fmt.Sprint("c", i), Client: true}, time.Now())
		os.WriteFile(filepath.Join(dir, fmt.Sprint("c", i, ".crt")), cred.CertPEM, 0o600)
	}
	b.Run("parsed", func(b *testing.B) {
		for b.Loop() {
			if len(CertsIn(dir)) != 12 {
				b.Fatal("not 12 certificates")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c certCache
		for b.Loop() {
			if len(c.in(dir)) != 12 {
				b.Fatal("not 12 certificates")
			}
		}
	})
}

// BenchmarkKubeconfig: the kubelet's kubeconfig, read and parsed for each
// health check, and through the probe's cache.
func BenchmarkKubeconfig(b *testing.B) {
	ca, _ := pki.NewCA("t", time.Now())
	cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "system:node:n1", Client: true}, time.Now())
	name := filepath.Join(b.TempDir(), "kubelet.conf")
	os.WriteFile(name, manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: "c", Server: "https://127.0.0.1:6444",
		CAPEM: ca.CertPEM, User: "system:node:n1", CertPEM: cred.CertPEM, KeyPEM: cred.KeyPEM}), 0o600)
	b.Run("parsed", func(b *testing.B) {
		for b.Loop() {
			data, _ := os.ReadFile(name)
			if _, err := manifests.ParseKubeconfig(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c kubeconfigCache
		for b.Loop() {
			if _, err := c.read(name); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The checks keep their connections (a check every 2 s made three TLS
// handshakes), and an endpoint that dropped them (restarted) is asked afresh.
func TestProbeKeepsConnections(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for range 5 {
		if h := n.probe.Check(ctx, "n1", true); failing(h) != "" {
			t.Fatal(failing(h))
		}
	}
	// One to the plain endpoints, one each to the apiserver (readyz with the
	// kubelet's credential, the Node), the loopback components: at most 4.
	if c := n.conns.Load(); c > 4 {
		t.Errorf("5 checks opened %d connections, want at most 4 (kept between checks)", c)
	}
	n.plain.CloseClientConnections()
	n.secure.CloseClientConnections()
	if h := n.probe.Check(ctx, "n1", true); failing(h) != "" {
		t.Errorf("after the endpoints dropped their connections: %s", failing(h))
	}
	n.probe.Close()
}

// A renewed certificate (rewritten in place) is read again; an unchanged one
// is not.
func TestCertCacheFollowsARenewal(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA("t", time.Now())
	write := func(at time.Time) {
		cred, _ := pki.Issue(ca, pki.CertSpec{CommonName: "kubelet", Client: true}, at)
		name := filepath.Join(dir, "kubelet.crt")
		os.WriteFile(name, cred.CertPEM, 0o600)
		os.Chtimes(name, at, at)
	}
	var c certCache
	write(time.Now())
	first := c.in(dir)
	write(time.Now().Add(time.Hour))
	second := c.in(dir)
	if len(first) != 1 || len(second) != 1 || !second[0].NotAfter.After(first[0].NotAfter) {
		t.Errorf("before the renewal %v, after %v: want a later expiry", first, second)
	}
	if again := c.in(dir); len(again) != 1 || !again[0].NotAfter.Equal(second[0].NotAfter) {
		t.Errorf("unchanged: %v, want %v", again, second)
	}
}
