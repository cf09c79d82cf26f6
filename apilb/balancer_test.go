package apilb

import (
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestPreferredBackendWhileHealthy(t *testing.T) {
	p := newTestPKI(t)
	a, b := newAPIServer(t, p, "a"), newAPIServer(t, p, "b")
	lb := startBalancer(t, p, b.addr(), a, b)
	waitHealthy(t, lb, 2)
	c := client(p, 2*time.Second)
	for range 3 {
		got, err := who(c, lb)
		if err != nil || got != "b" {
			t.Fatalf("who = %q, %v; want the preferred backend b", got, err)
		}
	}
}

// A backend that vanishes (no RST, no FIN: only timeouts tell) or answers
// /readyz with an error (an apiserver shutting down) is found unhealthy by
// its checks; its connections are cut, and the client's next request
// reaches the other backend.
func TestFailover(t *testing.T) {
	for name, fail := range map[string]func(*apiserver){
		"vanished": func(a *apiserver) { a.gate.freeze() },
		"unready":  func(a *apiserver) { a.unready.Store(true) },
	} {
		t.Run(name, func(t *testing.T) {
			p := newTestPKI(t)
			a, b := newAPIServer(t, p, "a"), newAPIServer(t, p, "b")
			lb := startBalancer(t, p, a.addr(), a, b)
			waitHealthy(t, lb, 2)
			c := client(p, 500*time.Millisecond)
			expectWho(t, c, lb, "a")
			fail(a)
			took := until(t, c, lb, "b", 10*time.Second)
			t.Logf("failover to b after %s", took)
			for _, s := range lb.Backends() {
				if s.Addr == a.addr() && (s.Healthy || s.Connections != 0) {
					t.Errorf("failed backend still healthy or connected: %+v", s)
				}
			}
		})
	}
}

// A backend that refuses connections is skipped at once, before any check
// notices.
func TestRefusingBackendSkipped(t *testing.T) {
	p := newTestPKI(t)
	b := newAPIServer(t, p, "b")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	lb, err := Start(Options{Listen: "127.0.0.1:0", Roots: p.roots, Prefer: dead, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Stop()
	lb.SetBackends([]string{dead, b.addr()})
	expectWho(t, client(p, 2*time.Second), lb, "b")
}

// Backends change with no restart: a removed backend's connections are cut
// and clients move to the new set; an empty set is ignored.
func TestBackendSetChanges(t *testing.T) {
	p := newTestPKI(t)
	a, b, c3 := newAPIServer(t, p, "a"), newAPIServer(t, p, "b"), newAPIServer(t, p, "c")
	lb := startBalancer(t, p, "", a)
	waitHealthy(t, lb, 1)
	c := client(p, 2*time.Second)
	expectWho(t, c, lb, "a")
	lb.SetBackends([]string{b.addr(), c3.addr()})
	got, err := who(c, lb)
	if err != nil || (got != "b" && got != "c") {
		t.Fatalf("after the change, who = %q, %v; want b or c", got, err)
	}
	lb.SetBackends(nil)
	if n := len(lb.Backends()); n != 2 {
		t.Fatalf("an empty set replaced the backends: %+v", lb.Backends())
	}
	lb.SetBackends([]string{c3.addr(), c3.addr()})
	waitHealthy(t, lb, 1)
	expectWho(t, c, lb, "c")
	if s := lb.Backends(); len(s) != 1 {
		t.Fatalf("duplicates kept: %+v", s)
	}
}

// With no backend ready (a master's kubelet starts before its apiserver is),
// connections still go through, and none is cut.
func TestUnreadyBackendsStillServe(t *testing.T) {
	p := newTestPKI(t)
	a := newAPIServer(t, p, "a")
	a.unready.Store(true)
	lb := startBalancer(t, p, "", a)
	waitHealthy(t, lb, 0)
	c := client(p, 2*time.Second)
	expectWho(t, c, lb, "a")
	time.Sleep(300 * time.Millisecond) // a few more checks
	if s := lb.Backends(); s[0].Connections != 1 {
		t.Fatalf("the only backend's connection was cut or not tracked: %+v", s)
	}
}

func TestStopClosesEverything(t *testing.T) {
	p := newTestPKI(t)
	a := newAPIServer(t, p, "a")
	lb := startBalancer(t, p, "", a)
	c := client(p, 2*time.Second)
	if _, err := who(c, lb); err != nil {
		t.Fatal(err)
	}
	addr := lb.Addr().String()
	lb.Stop()
	lb.Stop()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts after Stop", addr)
	}
	if _, err := who(c, lb); err == nil {
		t.Fatal("a kept-alive connection still answered after Stop")
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Options{Listen: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Start on a taken port: %v; want an error naming it", err)
	}
}

// BenchmarkFailover measures how long a kept-alive client takes to reach
// another apiserver after its own vanished, with the default check timing.
// It reports the median over b.N failovers.
func BenchmarkFailover(b *testing.B) {
	p := newTestPKI(b)
	var took []float64
	for b.Loop() {
		x, y := newAPIServer(b, p, "x"), newAPIServer(b, p, "y")
		lb, err := Start(Options{Listen: "127.0.0.1:0", Roots: p.roots, Prefer: x.addr()})
		if err != nil {
			b.Fatal(err)
		}
		lb.SetBackends([]string{x.addr(), y.addr()})
		waitHealthy(b, lb, 2)
		c := client(p, 500*time.Millisecond)
		expectWho(b, c, lb, "x")
		// Failures happen at any point of the check cycle.
		time.Sleep(time.Duration(len(took)%3) * 100 * time.Millisecond)
		x.gate.freeze()
		took = append(took, until(b, c, lb, "y", 10*time.Second).Seconds())
		lb.Stop()
	}
	sort.Float64s(took)
	b.ReportMetric(took[len(took)/2], "failover-s/median")
	b.ReportMetric(slices.Max(took), "failover-s/max")
	b.ReportMetric(0, "ns/op")
}
