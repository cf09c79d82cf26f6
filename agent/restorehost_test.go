package agent

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
)

// At boot the agent restores the kernel-only parts of a configured node
// (bridge, routes, iptables). Seen on a rebooted VM: knode.service's own
// RestoreHost and the host loop ran the boot phases at the same moment, both
// created cbr0, the loser failed and rolled back, deleting cbr0 under the
// pods and /var/lib/cni (the CNI plugins' results, which the runtime needs to
// tear pods down) as leftovers. Restores are exclusive, and a failed one
// leaves the node as it is, to be retried.
func TestRestoreHostIsExclusiveAndNeverRollsBack(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	n00 := tc.live()["n00"]
	tc.waitConverged(10*time.Second, 1)
	f := fakeHost(n00, netip.MustParsePrefix("127.0.0.0/8"))
	spec, err := n00.HostSpec(nil)
	if err != nil {
		t.Fatal(err)
	}
	// As init left the node: the runtime's CNI results, which the ledger
	// says knode's runtime made.
	ledger := path.Join(spec.DataDir, "hostprep", "ledger.json")
	results := "/var/lib/cni/results/knode-pod-eth0"
	f.Files.WriteFile(ledger, []byte(`{"/var/lib/cni": "created"}`), 0o600)
	f.Files.WriteFile(results, []byte("{}"), 0o600)
	if err := n00.MarkHost(); err != nil {
		t.Fatal(err)
	}
	// The iptables phase, after the bridge's, fails (a held xtables lock).
	f.IPTables.Fail["NewChain"] = errors.New("xtables lock held")
	n00.SetHost(&HostOptions{Host: f.Host(), Out: io.Discard})

	if err := n00.RestoreHost(t.Context()); err == nil || !strings.Contains(err.Error(), "xtables lock held") {
		t.Fatalf("RestoreHost with iptables failing: %v, want the iptables error", err)
	}
	if _, err := f.Net.LinkByName(hostprep.BridgeName); err != nil {
		t.Errorf("a failed restore removed %s: %v", hostprep.BridgeName, err)
	}
	if !f.Files.Exists(results) {
		t.Errorf("a failed restore removed %s", results)
	}
	if b, _ := f.Files.ReadFile(ledger); !strings.Contains(string(b), `"/var/lib/cni": "created"`) {
		t.Errorf("a failed restore dropped /var/lib/cni from the ledger:\n%s", b)
	}

	// Once iptables works again, callers racing the host loop all succeed:
	// one restores, the others find it done.
	f.IPTables.Fail["NewChain"] = nil
	n00.kickHost()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			errs <- n00.RestoreHost(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent RestoreHost: %v", err)
		}
	}
	if ok, err := f.IPTables.ChainExists("filter", "KNODE-FORWARD"); !ok || err != nil {
		t.Errorf("after the restore: filter/KNODE-FORWARD %v, %v", ok, err)
	}
	if !f.Files.Exists(results) {
		t.Errorf("the restore removed %s", results)
	}
}
