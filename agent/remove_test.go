package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"knode.dev/knode/config"
)

func TestRemoveNode(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	ctx := context.Background()
	m, w := tc.live()["n00"], tc.live()["n01"]

	if _, err := w.RemoveNode(ctx, "n02", true); !errors.Is(err, ErrNotMaster) {
		t.Errorf("a worker removed a node: %v", err)
	}
	for _, name := range []string{"n00", "nobody"} {
		if _, err := m.RemoveNode(ctx, name, false); !config.IsUsage(err) {
			t.Errorf("RemoveNode(%s) = %v, want a usage error", name, err)
		}
	}
	if _, err := m.RemoveNode(ctx, "n02", false); !errors.Is(err, ErrAlive) {
		t.Errorf("removed a live node without --force: %v", err)
	}

	gone, _ := tc.live()["n02"].Assignment()
	tc.kill("n02")
	waitFor(t, 15*time.Second, "n00 to see n02 dead", func() bool { return !m.g.Alive()["n02"] })
	res, err := m.RemoveNode(ctx, "n02", false)
	if err != nil || !res.Released || res.EtcdMember != "" {
		t.Fatalf("RemoveNode(n02) = %+v, %v", res, err)
	}
	waitFor(t, 10*time.Second, "n01 to see n02 released", func() bool {
		as, ok := w.state.Binding("n02")
		return ok && as.Released
	})
	if _, err := m.RemoveNode(ctx, "n02", false); !config.IsUsage(err) {
		t.Errorf("removed twice: %v", err)
	}
	// Its subnet goes to the next node (the lowest free one).
	n03 := tc.join("n03", "n01")
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	as, err := n03.WaitAssigned(cctx)
	if err != nil || as.PodCIDR != gone.PodCIDR {
		t.Fatalf("n03 got %v (%v), want n02's released %s", as.PodCIDR, err, gone.PodCIDR)
	}
}

// A master's removal needs its etcd member removed first: without etcd to
// reach (no configured host) nothing is released.
func TestRemoveMasterNeedsEtcd(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	tc.kill("n01")
	m := tc.live()["n00"]
	waitFor(t, 15*time.Second, "n00 to see n01 dead", func() bool { return !m.g.Alive()["n01"] })
	if _, err := m.RemoveNode(context.Background(), "n01", true); err == nil {
		t.Fatal("a master was removed with no etcd to remove it from")
	}
	if as, _ := m.state.Binding("n01"); as.Released {
		t.Fatal("the master's seat was released although its etcd member was not removed")
	}
}
