package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// fakeClock advances by the given steps on each call.
func fakeClock(steps ...time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	return func() time.Time {
		if i < len(steps) {
			t = t.Add(steps[i])
			i++
		}
		return t
	}
}

func TestProgressNoteDoesNotCloseStep(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b)
	p.table = true
	p.now = fakeClock(0, 0, 3*time.Second, 0, 2*time.Second, time.Second)
	p.start = p.now()                          // 0
	p.StepAs("staging", "staging the payload") // starts at 0
	p.Note("a note")                           // must not close the step
	p.Writer().Write([]byte("[stage] wrote kube\n"))
	p.StepAs("certs", "getting certificates") // closes staging at 3s, starts at 3s
	p.Finish("done")                          // closes certs at 5s; total at 6s
	want := "==> staging the payload ... \n" +
		"    a note\n" +
		"    [stage] wrote kube\n" +
		"    ok (3s)\n" +
		"==> getting certificates ... ok (2s)\n" +
		"    step or wait   took s     at s\n" +
		"    staging          3.00     3.00\n" +
		"    certs            2.00     5.00\n" +
		"==> done in 6s\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestWaitsAgainstAPIServer runs the node waits against a fake apiserver
// that becomes ready, registers the node, sets its CIDR, then makes it Ready;
// the rows come in that order whatever the order of the waits.
func TestWaitsAgainstAPIServer(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	srvCred, err := pki.Issue(ca, pki.CertSpec{CommonName: "kube-apiserver", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pki.Issue(ca, pki.KubeletClient("n1"), now)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "system:node:n1" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		t := time.Since(began)
		switch {
		case r.URL.Path == "/readyz" && t > 300*time.Millisecond:
			w.Write([]byte("ok"))
		case r.URL.Path == "/api/v1/nodes/n1" && t > 700*time.Millisecond:
			status, cidr := "False", ""
			if t > 1500*time.Millisecond {
				status = "True"
			}
			if t > 1100*time.Millisecond {
				cidr = "10.10.1.0/24"
			}
			w.Write([]byte(`{"spec":{"podCIDR":"` + cidr + `"},"status":{"conditions":[{"type":"Ready","status":"` + status + `"}]}}`))
		default:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	cert, err := tls.X509KeyPair(srvCred.CertPEM, srvCred.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	kc := filepath.Join(t.TempDir(), "kubelet.conf")
	os.WriteFile(kc, manifests.KubeconfigFile(manifests.Kubeconfig{Cluster: "demo", Server: srv.URL, CAPEM: ca.CertPEM,
		User: "system:node:n1", CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}), 0o600)
	api, err := kubeapi.FromKubeconfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	var b strings.Builder
	p := newProgress(&b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runWaits(ctx, p, append(nodeWaits(api, "n1", "10.10.1.0/24"), apiServing(api))); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range p.Timings() {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "apiserver serving,node registered,podCIDR set,node Ready" {
		t.Errorf("rows: %s", got)
	}

	// A condition that never holds ends with what was seen last.
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	err = runWaits(short, p, nodeWaits(api, "n1", "10.10.9.0/24")[2:])
	if err == nil || !strings.Contains(err.Error(), `podCIDR "10.10.1.0/24", want 10.10.9.0/24`) {
		t.Errorf("err = %v", err)
	}
}

// The launcher's staging is init's first row, counted from the launcher's start; a launcher
// that found everything staged adds no row, one that waited for another stager does.
func TestBringUpProgressTakesTheLaunchersStaging(t *testing.T) {
	start := time.Now().Add(-3 * time.Second)
	cases := []struct {
		name    string
		launch  assets.Launch
		dataDir string
		row     bool
	}{
		{"staged here", assets.Launch{Start: start, StagedDir: "/var/lib/knode", Took: 1500 * time.Millisecond, Written: 27}, "/var/lib/knode", true},
		{"waited for another", assets.Launch{Start: start, StagedDir: "/var/lib/knode", Took: time.Second}, "/var/lib/knode", true},
		{"already staged", assets.Launch{Start: start, StagedDir: "/var/lib/knode", Took: time.Millisecond}, "/var/lib/knode", false},
		{"another data dir", assets.Launch{Start: start, StagedDir: "/var/lib/knode", Took: time.Second, Written: 27}, "/srv/knode", false},
		{"no launcher", assets.Launch{}, "/var/lib/knode", false},
	}
	for _, c := range cases {
		var out strings.Builder
		app := newApp(&out, &out)
		app.Metadata = map[string]any{launchKey: c.launch}
		p := bringUpProgress(cli.NewContext(app, nil, nil), c.dataDir)
		rows := p.Timings()
		if got := len(rows) == 1 && rows[0].Name == "staging"; got != c.row {
			t.Errorf("%s: rows %+v, want a staging row: %v", c.name, rows, c.row)
		}
		if c.row && (rows[0].Seconds != seconds(c.launch.Took) || rows[0].At != seconds(c.launch.Took)) {
			t.Errorf("%s: row %+v, want took = at = %v (counted from the launcher's start)", c.name, rows[0], c.launch.Took)
		}
		if !c.launch.Start.IsZero() && p.Elapsed() < 3*time.Second {
			t.Errorf("%s: elapsed %s, want it counted from the launcher's start 3 s ago", c.name, p.Elapsed())
		}
	}
}
