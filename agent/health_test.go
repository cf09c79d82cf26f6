package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/gossip"
)

// fakeProbe reports a node whose kubelet runs or not.
type fakeProbe struct {
	mu      sync.Mutex
	kubelet bool
	checks  int
}

func (p *fakeProbe) set(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kubelet = ok
}

func (p *fakeProbe) Check(_ context.Context, node string, master bool) gossip.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks++
	h := gossip.Health{Name: node, KubeletVersion: "v1.36.3", Checks: []gossip.Check{{What: gossip.CompContainerd, OK: true}, {What: gossip.CompKubelet, OK: p.kubelet}}}
	if !p.kubelet {
		h.Checks[1].Detail = "kubelet.service inactive (dead)"
	}
	if master {
		h.Checks = append(h.Checks, gossip.Check{What: gossip.CompEtcd, OK: true})
	}
	return h
}

func TestHealthSpreadsToEveryNode(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	probes := map[string]*fakeProbe{}
	for name, a := range tc.live() {
		probes[name] = &fakeProbe{kubelet: true}
		a.SetHost(&HostOptions{Health: probes[name]})
	}
	observer := tc.live()["n02"]
	verdict := func() (bool, string) {
		st := observer.Status()
		var problems []string
		for _, m := range st.Members {
			for _, p := range m.Problems {
				problems = append(problems, m.Name+": "+p)
			}
		}
		return st.Healthy, strings.Join(problems, "; ")
	}
	waitFor(t, 10*time.Second, "a healthy cluster", func() bool { ok, _ := verdict(); return ok })
	st := observer.Status()
	if m := st.Members[0]; m.Name != "n00" || m.Health == nil || len(m.Health.Checks) != 3 || m.Health.KubeletVersion != "v1.36.3" {
		t.Errorf("master's health as n02 sees it: %+v", m.Health)
	}

	start := time.Now()
	probes["n01"].set(false)
	waitFor(t, 10*time.Second, "n01's stopped kubelet seen by n02", func() bool {
		ok, why := verdict()
		return !ok && why == "n01: kubelet: kubelet.service inactive (dead)"
	})
	t.Logf("a stopped kubelet reached another node's status in %s", time.Since(start).Round(time.Millisecond))
	probes["n01"].set(true)
	waitFor(t, 10*time.Second, "healthy again", func() bool { ok, _ := verdict(); return ok })

	// Unchanged health is not published again.
	gen := observer.Snapshot().Health["n01"].Gen
	time.Sleep(500 * time.Millisecond)
	if g := observer.Snapshot().Health["n01"].Gen; g != gen {
		t.Error("an unchanged summary was published again")
	}
	// A dead node is a problem whatever it last reported.
	tc.kill("n01")
	waitFor(t, 15*time.Second, "n01 dead", func() bool {
		_, why := verdict()
		return why == "n01: node is dead"
	})
}
