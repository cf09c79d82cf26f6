package agent

import (
	"context"
	"io"
	"path"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// A master that leaves for good (reset) frees its seat; the allocator gives it
// to the worker, the masters seal the master keys to it, and its host gains
// the control plane.
func TestPromotionAfterRelease(t *testing.T) {
	tc := newTestCluster(t, testPlan(3))
	for i, n := range []string{"n01", "n02", "n03"} {
		tc.join(n, "n00") // one after another: join order decides the seats
		tc.waitConverged(10*time.Second, i+2)
	}
	w := tc.live()["n03"]
	if as, _ := w.Assignment(); as.Seat != -1 || w.HasSecrets() {
		t.Fatalf("n03 should start as a worker without keys: %+v", as)
	}
	leaver := tc.live()["n02"]
	tc.mu.Lock()
	delete(tc.agents, "n02")
	tc.mu.Unlock()
	if err := leaver.Remove(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "n03 seated with the master keys", func() bool {
		as, _ := w.Assignment()
		return as.Seat == 2 && w.HasSecrets()
	})

	// Its host: a configured worker's (an etcd member already on disk keeps
	// the fake host away from etcd's client).
	f := hostpreptest.New()
	f.Files.WriteFile(path.Join(hostprep.EtcdDataDir, "member", "snap"), nil, 0o600)
	f.Files.WriteFile(path.Join(hostprep.ManifestsDir, "etcd.yaml"), []byte("kept"), 0o600)
	h := &HostOptions{Host: f.Host(), Out: io.Discard}
	w.SetHost(h)
	spec, err := w.HostSpec(nil)
	if err != nil || !spec.Self.Master {
		t.Fatalf("spec of the promoted node: master %v, %v", spec.Self.Master, err)
	}
	if err := w.becomeMaster(context.Background(), spec, h); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"} {
		if !f.Files.Exists(path.Join(hostprep.ManifestsDir, p)) {
			t.Errorf("no %s after the promotion", p)
		}
	}
	for _, p := range []string{"ca.key", "apiserver.crt", "sa.key"} {
		if !f.Files.Exists(path.Join(hostprep.PKIDir, p)) {
			t.Errorf("no %s after the promotion", p)
		}
	}
	before := f.String()
	if err := w.becomeMaster(context.Background(), spec, h); err != nil || f.String() != before {
		t.Fatalf("a second call changed the host (%v)", err)
	}
}
