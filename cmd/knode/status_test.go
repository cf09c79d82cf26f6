package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"knode.dev/knode/internal/goldentest"

	"knode.dev/knode/agent"
	"knode.dev/knode/gossip"
)

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) { goldentest.Compare(t, name, []byte(got)) }

func TestStatusNamesRefusedInput(t *testing.T) {
	var b strings.Builder
	st := agent.Status{Self: "m0", Members: []agent.MemberStatus{{Name: "m0", State: "alive", Roles: []string{"master"}, PodCIDR: "10.10.0.0/24"}},
		Refused: map[string]uint64{"evil": 12, "m0": 1}}
	printStatus(&b, st, time.Now())
	if !strings.Contains(b.String(), "by claimed author: evil 12, m0 1") {
		t.Errorf("refusals not shown:\n%s", b.String())
	}
	b.Reset()
	st.Refused = nil
	printStatus(&b, st, time.Now())
	if strings.Contains(b.String(), "refused") {
		t.Errorf("refusals shown when there are none:\n%s", b.String())
	}
}

// statusFixture is a 4-node cluster as a master's agent reports it: the
// master healthy with a certificate expiring soon, one worker whose kubelet
// is stopped, one dead worker and a joiner.
func statusFixture(now time.Time) agent.Status {
	checked := now.Add(-3 * time.Second)
	soon, later := now.Add(20*24*time.Hour+time.Hour), now.Add(364*24*time.Hour+time.Hour)
	ok := func(cs ...gossip.Component) []gossip.Check {
		var out []gossip.Check
		for _, c := range cs {
			out = append(out, gossip.Check{What: c, OK: true})
		}
		return out
	}
	workerChecks := ok(gossip.CompContainerd, gossip.CompKubelet, gossip.CompKubeProxy, gossip.CompNodeReady)
	workerChecks[1] = gossip.Check{What: gossip.CompKubelet, Detail: "kubelet.service inactive (dead)"}
	workerChecks[3] = gossip.Check{What: gossip.CompNodeReady, Detail: "Ready=Unknown (NodeStatusUnknown)"}
	st := agent.Status{
		Cluster: agent.ClusterStatus{Name: "demo", PodCIDR: "10.10.0.0/16", ServiceCIDR: "10.0.0.0/16", NodeCIDRMask: 24, Masters: 1, Network: "routed"},
		Self:    "m0",
		Members: []agent.MemberStatus{
			{Name: "m0", Address: "172.30.77.11:7946", State: "alive", Roles: []string{"master"}, PodCIDR: "10.10.0.0/24", Version: "v0.9", LastSeen: now,
				Health: &agent.HealthStatus{Checked: checked, KubeletVersion: "v1.36.3", RuntimeVersion: "containerd://v2.4.2", CertExpiry: &soon, CertName: "apiserver",
					Checks: ok(gossip.CompContainerd, gossip.CompKubelet, gossip.CompKubeProxy, gossip.CompNodeReady, gossip.CompEtcd, gossip.CompAPIServer, gossip.CompControllerManager, gossip.CompScheduler)},
				Healthy: true, Warnings: []string{"certificate apiserver expires in 20 days"}},
			{Name: "w1", Address: "172.30.77.12:7946", State: "alive", Roles: []string{"worker"}, PodCIDR: "10.10.1.0/24", Version: "v0.9", LastSeen: now,
				Health:   &agent.HealthStatus{Checked: checked, KubeletVersion: "v1.36.3", CertExpiry: &later, CertName: "kubelet-client", Checks: workerChecks},
				Problems: []string{"kubelet: kubelet.service inactive (dead)", "node-ready: Ready=Unknown (NodeStatusUnknown)"}},
			{Name: "w2", Address: "172.30.77.13:7946", State: "dead", Roles: []string{"worker"}, PodCIDR: "10.10.2.0/24", Version: "v0.9", LastSeen: now.Add(-42 * time.Second),
				Problems: []string{"node is dead"}},
			{Name: "w3", Address: "172.30.77.14:7946", State: "alive", Roles: []string{}, Version: "v0.9", LastSeen: now,
				Problems: []string{"joining: no pod subnet yet"}},
		},
	}
	return st
}

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	printStatus(&b, statusFixture(now), now)
	golden(t, "status-unhealthy.txt", b.String())

	st := statusFixture(now)
	st.Members = st.Members[:1]
	st.Healthy = true
	b.Reset()
	printStatus(&b, st, now)
	golden(t, "status-healthy.txt", b.String())
}

// fakeAgent serves statuses on a data directory's socket; healthy from the
// n-th query on (never when n is 0).
func fakeAgent(t *testing.T, n int) string {
	t.Helper()
	dir := tempDir(t)
	ln, err := net.Listen("unix", filepath.Join(dir, "knode.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var queries atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		q := int(queries.Add(1))
		st := statusFixture(time.Now())
		if n > 0 && q >= n {
			st.Members, st.Healthy = st.Members[:1], true
		}
		json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return dir
}

func TestStatusExitCodeAndWait(t *testing.T) {
	ctx := context.Background()
	dir := fakeAgent(t, 0)
	code, out, stderr := knode(ctx, "status", "--data-dir", dir)
	if code != exitUnhealthy || !strings.Contains(out, "cluster NOT healthy: 4 problem(s)") || stderr != "" {
		t.Errorf("unhealthy: exit %d, stderr %q\n%s", code, stderr, out)
	}
	start := time.Now()
	code, out, _ = knode(ctx, "status", "--wait", "--timeout", "1500ms", "--json", "--data-dir", dir)
	var st agent.Status
	if code != exitUnhealthy || json.Unmarshal([]byte(out), &st) != nil || st.Healthy || time.Since(start) < 1500*time.Millisecond {
		t.Errorf("--wait timed out: exit %d after %s\n%s", code, time.Since(start), out)
	}
	dir = fakeAgent(t, 3)
	code, out, _ = knode(ctx, "status", "--wait", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "cluster healthy") {
		t.Errorf("--wait until healthy: exit %d\n%s", code, out)
	}
}
