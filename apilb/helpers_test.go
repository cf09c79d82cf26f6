package apilb

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"knode.dev/knode/pki"
)

// testPKI is a cluster CA and an apiserver certificate for 127.0.0.1.
type testPKI struct {
	roots *x509.CertPool
	cert  tls.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := pki.Issue(ca, pki.CertSpec{CommonName: "kube-apiserver", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(cred.CertPEM, cred.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return testPKI{roots: roots, cert: cert}
}

// apiserver is a TLS server answering /readyz (200 unless made unready) and
// /who (its name), reached through a gate that can black-hole it.
type apiserver struct {
	name    string
	unready atomic.Bool
	srv     *httptest.Server
	gate    *gate
}

func newAPIServer(t testing.TB, p testPKI, name string) *apiserver {
	t.Helper()
	a := &apiserver{name: name}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			if a.unready.Load() {
				http.Error(w, "not ready", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok")
		case "/who":
			io.WriteString(w, a.name)
		default:
			http.NotFound(w, r)
		}
	}))
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.cert}}
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut by the tests
	a.srv.StartTLS()
	a.gate = newGate(t, a.srv.Listener.Addr().String())
	t.Cleanup(func() {
		a.gate.close()
		a.srv.Close()
	})
	return a
}

// addr is where the balancer reaches this apiserver (its gate).
func (a *apiserver) addr() string { return a.gate.ln.Addr().String() }

// gate forwards TCP to a target until frozen; frozen, it forwards nothing
// and answers nothing, like a machine that vanished from the network (no
// RST, no FIN: only timeouts tell).
type gate struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newGate(t testing.TB, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	g.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.hold(c)
			if g.frozen.Load() {
				continue // accepted, never served
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			g.hold(up)
			g.wg.Go(func() { g.copy(up, c) })
			g.wg.Go(func() { g.copy(c, up) })
		}
	})
	return g
}

func (g *gate) hold(c net.Conn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
}

// copy forwards until frozen; then it stops reading and writing for good.
func (g *gate) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if g.frozen.Load() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return
		}
	}
}

func (g *gate) freeze() { g.frozen.Store(true) }

func (g *gate) close() {
	g.ln.Close()
	g.mu.Lock()
	for _, c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// client is an HTTPS client of the endpoint that keeps its connection alive,
// as the kubelet's does.
func client(p testPKI, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.roots}, MaxIdleConnsPerHost: 1,
	}}
}

// who asks the endpoint which apiserver answers.
func who(c *http.Client, b *Balancer) (string, error) {
	resp, err := c.Get(b.URL() + "/who")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body)), err
}

// expectWho fails the test unless the endpoint's answer comes from want.
func expectWho(t testing.TB, c *http.Client, b *Balancer, want string) {
	t.Helper()
	if got, err := who(c, b); err != nil || got != want {
		t.Fatalf("who = %q, %v; want %s", got, err, want)
	}
}

// startBalancer runs a balancer with fast checks over the given apiservers.
func startBalancer(t testing.TB, p testPKI, prefer string, backends ...*apiserver) *Balancer {
	t.Helper()
	b, err := Start(Options{Listen: "127.0.0.1:0", Roots: p.roots, Prefer: prefer,
		Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	var addrs []string
	for _, a := range backends {
		addrs = append(addrs, a.addr())
	}
	b.SetBackends(addrs)
	return b
}

// waitHealthy waits until the balancer has checked every backend and found
// want of them healthy.
func waitHealthy(t testing.TB, b *Balancer, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, checked := 0, true
		for _, s := range b.Backends() {
			checked = checked && s.Checked
			if s.Healthy {
				n++
			}
		}
		if checked && n == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("backends never became %d healthy: %+v", want, b.Backends())
}

// until asks who answers until it is want, and returns how long that took.
func until(t testing.TB, c *http.Client, b *Balancer, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	var err error
	for time.Since(start) < limit {
		if got, err = who(c, b); err == nil && got == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the endpoint did not reach %s within %s: last answer %q, %v; backends %+v", want, limit, got, err, b.Backends())
	return 0
}
