package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/pki"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A worker's renewal goes through a master by letters, like its first
// certificates: before a third of the lifetime is left it keeps its own,
// after it gets new ones, for its own name only.
func TestWorkerRenewsThroughMaster(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	tc := newTestClusterWith(t, testPlan(1), gossip.Fast, func(name string, o *Options) {
		o.CertLifetime = time.Minute
		if name == "w01" {
			o.Now = clock.Now
		}
	})
	w := tc.join("w01", "n00")
	tc.waitConverged(10*time.Second, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	first, err := w.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := pki.ParseCert(first[credKubelet].CertPEM)
	if life := cert.NotAfter.Sub(cert.NotBefore); life > 70*time.Second {
		t.Fatalf("the master signed for %s, not the one-minute test lifetime", life)
	}

	clock.Add(20 * time.Second) // early: kept
	early, err := w.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range credKinds() {
		if string(early[kind].CertPEM) != string(first[kind].CertPEM) {
			t.Errorf("%s renewed early", kind)
		}
	}

	clock.t = pki.RenewAt(cert).Add(time.Second) // due: renewed by the master
	renewed, err := w.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ca := mustCA(t, tc)
	bound := w.Snapshot().Assignments["w01"].Addr
	for _, kind := range credKinds() {
		if string(renewed[kind].CertPEM) == string(first[kind].CertPEM) {
			t.Errorf("%s not renewed once due", kind)
			continue
		}
		spec, _ := credSpec(kind, "w01", bound)
		if err := pki.Verify(ca, renewed[kind], spec, time.Now(), 0); err != nil {
			t.Errorf("renewed %s: %v", kind, err)
		}
		if pki.Due(ca, renewed[kind].CertPEM, clock.Now()) {
			t.Errorf("renewed %s is due at once", kind)
		}
	}
	// Stored: the renewed ones are what the worker now keeps.
	again, err := w.Credentials(ctx)
	if err != nil || string(again[credKubelet].CertPEM) != string(renewed[credKubelet].CertPEM) {
		t.Errorf("renewed credentials not stored: %v", err)
	}
}

// A master signs a worker's renewal requests for the sender's name and bound
// address only, whatever the requests say.
func TestSignForOwnNameOnly(t *testing.T) {
	now := time.Now()
	ca, err := pki.NewCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("172.31.0.5")
	csr := func(spec pki.CertSpec) []byte {
		c, _, err := pki.NewCSR(spec)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reqs := map[string][]byte{
		credKubelet:        csr(pki.KubeletClient("w02")), // another node's identity
		credKubeProxy:      csr(pki.CertSpec{CommonName: "system:kube-proxy"}),
		credKubeletServing: csr(pki.KubeletServing("w01", netip.MustParseAddr("10.9.9.9"))),
		"admin":            csr(pki.CertSpec{CommonName: "kubernetes-admin", Organizations: []string{"system:masters"}}),
	}
	got := signFor(ca, "w01", addr, reqs, now, time.Minute, slog.New(slog.DiscardHandler))
	if _, ok := got[credKubelet]; ok {
		t.Error("signed w01's request for w02's kubelet identity")
	}
	if _, ok := got["admin"]; ok {
		t.Error("signed a kind workers may not ask for")
	}
	for kind, spec := range map[string]pki.CertSpec{
		credKubeProxy:      {CommonName: "system:kube-proxy", Client: true},
		credKubeletServing: pki.KubeletServing("w01", addr), // the bound address, not the one asked for
	} {
		cert, err := pki.ParseCert(got[kind])
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !spec.Server && len(cert.IPAddresses) != 0 || spec.Server && (len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(addr.AsSlice())) {
			t.Errorf("%s names %v, want %v", kind, cert.IPAddresses, spec.IPs)
		}
		if cert.Subject.CommonName != spec.CommonName {
			t.Errorf("%s is for %q", kind, cert.Subject.CommonName)
		}
		if life := cert.NotAfter.Sub(cert.NotBefore); life != 66*time.Second {
			t.Errorf("%s lives %s, want the minute asked for (and 6 s back-dated)", kind, life)
		}
	}
}

func TestRenewWait(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := &Agent{opts: Options{Now: clock.Now}}
	for _, tt := range []struct {
		in   time.Duration
		want time.Duration
	}{{-time.Hour, renewLookMin}, {0, renewLookMin}, {40 * time.Second, 40 * time.Second}, {400 * 24 * time.Hour, renewLookMax}} {
		if got := a.renewWait(clock.Now().Add(tt.in)); got != tt.want {
			t.Errorf("renewal in %s: wait %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Three masters whose certificates come due in the same second start their
// renewals in their own seats' windows, one after another; a worker starts
// when due.
func TestMastersRenewInTurns(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.join("w03", "n00")
	tc.waitConverged(15*time.Second, 4)
	life := 365 * 24 * time.Hour
	due := time.Now().Add(time.Hour)
	sched := []hostprep.CertDue{{Path: "apiserver.crt", RenewAt: due, Lifetime: life}}
	w := pki.RenewWindow(life)
	seen := map[int64]string{}
	for _, name := range []string{"n00", "n01", "n02"} {
		a := tc.live()[name]
		as, _ := a.Assignment()
		if as.Seat < 0 {
			t.Fatalf("%s holds no seat", name)
		}
		start := a.renewStart(sched)
		win := start.UnixNano() / int64(w)
		if start.Before(due) || start.Sub(due) > 3*w || int(win%3) != as.Seat {
			t.Errorf("%s (seat %d) starts %s for a renewal due %s", name, as.Seat, start, due)
		}
		if other, ok := seen[win]; ok {
			t.Errorf("%s and %s renew in the same window", name, other)
		}
		seen[win] = name
	}
	if start := tc.live()["w03"].renewStart(sched); !start.Equal(due) {
		t.Errorf("worker starts %s, want when due (%s)", start, due)
	}
}
