package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

func statusOf(t *testing.T, a *Agent, name string) MemberStatus {
	t.Helper()
	for _, m := range a.Status().Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("%s does not list %s", a.Name(), name)
	return MemberStatus{}
}

func TestThreeMasterElection(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	for i := 1; i <= 4; i++ {
		tc.join(fmt.Sprintf("n%02d", i), "n00")
		// Joins spaced out: join order decides the seats.
		tc.waitConverged(10*time.Second, i+1)
	}
	v := tc.waitConverged(10*time.Second, 5)
	for name, want := range map[string]string{"n00": "master", "n01": "master", "n02": "master", "n03": "worker", "n04": "worker"} {
		if got := statusOf(t, tc.live()["n04"], name).Roles; len(got) != 1 || got[0] != want {
			t.Errorf("%s has roles %v, want [%s]\n%s", name, got, want, v)
		}
	}
	// A dead master stays a master: no re-election.
	tc.kill("n01")
	deadline := time.Now().Add(15 * time.Second)
	for statusOf(t, tc.live()["n03"], "n01").State != gossip.StateDead {
		if time.Now().After(deadline) {
			t.Fatalf("n01 not reported dead:\n%s", view(tc.live()["n03"].Status()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tc.join("n05", "n02")
	v = tc.waitConverged(10*time.Second, 6)
	if m := statusOf(t, tc.live()["n00"], "n01"); m.Roles[0] != "master" || m.State != gossip.StateDead {
		t.Errorf("dead master n01 reported as %v %s", m.Roles, m.State)
	}
	if m := statusOf(t, tc.live()["n00"], "n05"); m.Roles[0] != "worker" {
		t.Errorf("n05 took a seat after a master died: %v\n%s", m.Roles, v)
	}
}

func TestConcurrentJoinsGetDistinctSubnets(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	tc.join("n01", "n00")
	tc.join("n02", "n01")
	tc.waitConverged(10*time.Second, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := fmt.Sprintf("n%02d", i%3) // through different peers
			if _, err := tc.start(fmt.Sprintf("j%02d", i), []string{via}, nil, tc.token, false); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v := tc.waitConverged(30*time.Second, 23)
	if n := strings.Count(v, "[master]"); n != 3 {
		t.Errorf("%d masters, want 3:\n%s", n, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, a := range tc.live() {
		as, err := a.WaitAssigned(ctx)
		if err != nil || !as.PodCIDR.IsValid() {
			t.Errorf("%s: %v %v", name, as, err)
		}
	}
}

func TestRestartKeepsSubnet(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	before, _ := tc.live()["n01"].Assignment()
	for i, leave := range []bool{false, true} {
		a := tc.live()["n01"]
		tc.mu.Lock()
		delete(tc.agents, "n01")
		tc.mu.Unlock()
		a.Stop(leave)
		tc.join(fmt.Sprintf("x%d", i), "n02") // must not take n01's subnet meanwhile
		after, err := tc.start("n01", []string{"n00"}, nil, tc.token, true)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		as, err := after.WaitAssigned(ctx)
		cancel()
		// (Its gossip port is new, so its decision is renewed: same subnet.)
		if err != nil || as.PodCIDR != before.PodCIDR || as.Seat != before.Seat {
			t.Fatalf("leave=%v: n01 came back with %v seat %d (%v), had %s seat %d", leave, as.PodCIDR, as.Seat, err, before.PodCIDR, before.Seat)
		}
		tc.waitConverged(10*time.Second, 4+i)
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	other := tc.token
	other.Secret[0] ^= 1 // another cluster's secret
	_, err := tc.start("intruder", []string{"n00"}, nil, other, false)
	if !errors.Is(err, gossip.ErrTokenRefused) {
		t.Fatalf("join with a wrong secret: err = %v, want ErrTokenRefused", err)
	}
	// Someone who learnt the secret serves another CA (a man in the middle):
	// the joiner must notice through the token's pin.
	fake, err := Create(tc.dir("fake"), tc.cluster, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fake.Token.Secret = tc.token.Secret
	if _, err := tc.start("fake", nil, fake, fake.Token, false); err != nil {
		t.Fatal(err)
	}
	_, err = tc.start("victim", []string{"fake"}, nil, tc.token, false)
	if err == nil || !strings.Contains(err.Error(), "does not match the token's pin") {
		t.Fatalf("join through a server of another CA: err = %v", err)
	}
	if tc.dir("victim").Initialised() {
		t.Error("a refused join left an initialised data directory")
	}
	tc.kill("fake")
	time.Sleep(500 * time.Millisecond)
	if v := tc.waitConverged(5*time.Second, 1); strings.Contains(v, "intruder") {
		t.Errorf("cluster lists a refused node:\n%s", v)
	}
}

func TestTakenNameIsRefused(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("w01", "n00")
	tc.waitConverged(10*time.Second, 2)
	// w01's machine dies; another machine (new keys) takes its name.
	tc.kill("w01")
	if err := os.RemoveAll(tc.dir("w01").Root); err != nil {
		t.Fatal(err)
	}
	waitState(t, tc.live()["n00"], "w01", gossip.StateDead)
	other, err := tc.start("w01", []string{"n00"}, nil, tc.token, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.WaitAssigned(ctx); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "held by another machine") {
		t.Fatalf("a second machine under a taken name: %v", err)
	}
}

func TestExhaustedRangeIsAnError(t *testing.T) {
	plan := testPlan(1)
	plan.PodCIDR = netip.MustParsePrefix("10.10.0.0/23") // two /24s
	tc := newTestCluster(t, plan)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Claims are served in the order they arrive: n01 first.
	if _, err := tc.join("n01", "n00").WaitAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	a := tc.join("n02", "n00")
	_, err := a.WaitAssigned(ctx)
	if !errors.Is(err, ErrNoSubnet) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("third node in a two-subnet range: err = %v", err)
	}
	if v := tc.waitConverged(10*time.Second, 3); strings.Count(v, "[master]")+strings.Count(v, "[worker]") != 2 {
		t.Errorf("want exactly two subnets held:\n%s", v)
	}
}

func TestPartitionHealConverges(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	tc.join("n01", "n00")
	tc.join("n02", "n01")
	tc.join("w03", "n00")
	tc.waitConverged(10*time.Second, 4)
	// The newcomers are on one side each from the start.
	side1 := []string{tc.addr("n00"), tc.addr("w03"), tc.reserve("a")}
	side2 := []string{tc.addr("n01"), tc.addr("n02"), tc.reserve("b")}
	tc.net.partition(side1, side2)
	// Each side declares the other dead, then takes a new node.
	waitState(t, tc.live()["n01"], "n00", gossip.StateDead)
	waitState(t, tc.live()["n00"], "n01", gossip.StateDead)
	a := tc.join("a", "w03")
	b := tc.join("b", "n02")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	asA, errA := a.WaitAssigned(ctx)
	asB, errB := b.WaitAssigned(ctx)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	// Each side's allocator gave the lowest free subnet away: a duplicate.
	if asA.PodCIDR != asB.PodCIDR {
		t.Fatalf("no duplicate to resolve: a=%s b=%s", asA.PodCIDR, asB.PodCIDR)
	}
	older, newer := a, b
	if asB.Version < asA.Version || (asB.Version == asA.Version && asB.By < asA.By) {
		older, newer = b, a
	}
	tc.net.heal()
	v := tc.waitConverged(30*time.Second, 6)
	if n := strings.Count(v, "[master]"); n != 3 {
		t.Errorf("%d masters after heal, want 3:\n%s", n, v)
	}
	if got, _ := older.Assignment(); got.PodCIDR != asA.PodCIDR {
		t.Errorf("the older decision lost: %s holds %s, want %s\n%s", older.Name(), got.PodCIDR, asA.PodCIDR, v)
	}
	if got, _ := newer.Assignment(); got.PodCIDR == asA.PodCIDR || !got.PodCIDR.IsValid() {
		t.Errorf("the newer holder %s was not moved: %s\n%s", newer.Name(), got.PodCIDR, v)
	}
}

func waitState(t *testing.T, a *Agent, name, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for statusOf(t, a, name).State != state {
		if time.Now().After(deadline) {
			t.Fatalf("%s never sees %s %s:\n%s", a.Name(), name, state, view(a.Status()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSecretsReachMastersOnly(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	for i := 1; i <= 3; i++ {
		tc.join(fmt.Sprintf("n%02d", i), "n00")
		tc.waitConverged(10*time.Second, i+1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !tc.live()["n01"].HasSecrets() || !tc.live()["n02"].HasSecrets() {
		if time.Now().After(deadline) {
			t.Fatal("masters n01, n02 never received the CA key")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // give a wrong delivery time to happen
	if tc.live()["n03"].HasSecrets() {
		t.Error("worker n03 holds the CA key")
	}
	ca, _ := os.ReadFile(tc.dir("n00").Path(datadir.SecretsDir, datadir.CAKeyFile))
	for _, name := range []string{"n01", "n02"} {
		got, err := os.ReadFile(tc.dir(name).Path(datadir.SecretsDir, datadir.CAKeyFile))
		if err != nil || string(got) != string(ca) {
			t.Errorf("%s: CA key %v", name, err)
		}
		if fi, err := os.Stat(tc.dir(name).Path(datadir.SecretsDir, datadir.CAKeyFile)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: CA key mode %v", name, fi.Mode())
		}
	}
	if _, err := os.Stat(tc.dir("n03").Path(datadir.SecretsDir, datadir.CAKeyFile)); err == nil {
		t.Error("worker n03 has a CA key file")
	}
	// No private key in anything that is gossiped, saved as state or reported.
	for name, a := range tc.live() {
		st, _ := os.ReadFile(tc.dir(name).Path(datadir.StateFile))
		for what, text := range map[string]string{"status": fmt.Sprint(a.Status()), "state": string(st), "snapshot": fmt.Sprint(a.Snapshot())} {
			if strings.Contains(text, "PRIVATE KEY") {
				t.Errorf("%s: %s contains a private key", name, what)
			}
		}
	}
}

func TestWorkerCredentialsSignedByMaster(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	w := tc.join("w01", "n00")
	tc.waitConverged(10*time.Second, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	creds, err := w.Credentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCert(creds[credKubelet].CertPEM)
	if err != nil || cert.Subject.CommonName != "system:node:w01" || cert.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("kubelet cert %v: %v", cert.Subject, err)
	}
	if err := cert.CheckSignatureFrom(mustCA(t, tc).Cert); err != nil {
		t.Errorf("kubelet cert not signed by the cluster CA: %v", err)
	}
	// The serving certificate names the worker and the address its decision binds, nothing else.
	serving, err := pki.ParseCert(creds[credKubeletServing].CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	bound := w.Snapshot().Assignments["w01"].Addr
	if len(serving.IPAddresses) != 1 || !serving.IPAddresses[0].Equal(bound.AsSlice()) || len(serving.DNSNames) != 1 || serving.DNSNames[0] != "w01" ||
		len(serving.ExtKeyUsage) != 1 || serving.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("kubelet serving cert names %v %v (usage %v), want w01 and %s for serving", serving.DNSNames, serving.IPAddresses, serving.ExtKeyUsage, bound)
	}
	if err := serving.CheckSignatureFrom(mustCA(t, tc).Cert); err != nil {
		t.Errorf("kubelet serving cert not signed by the cluster CA: %v", err)
	}
	// Stored: a second call needs no master.
	tc.kill("n00")
	again, err := w.Credentials(ctx)
	if err != nil || string(again[credKubeProxy].CertPEM) != string(creds[credKubeProxy].CertPEM) {
		t.Errorf("stored credentials not reused: %v", err)
	}
	if w.HasSecrets() {
		t.Error("worker holds secrets")
	}
}

func mustCA(t *testing.T, tc *testCluster) *pki.CA {
	ca, err := pki.LoadCA(tc.live()["w01"].Snapshot().Cluster.CACert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}
