package agent

import (
	"errors"
	"testing"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/roles"
)

// A master's restore reaches the other masters in its signed record and
// survives a restart of its agent's identity; a worker cannot announce one.
func TestEtcdRestoredAnnounced(t *testing.T) {
	tc := newTestCluster(t, testPlan(1))
	tc.join("n01", "n00")
	tc.waitConverged(10*time.Second, 2)
	m, w := tc.live()["n00"], tc.live()["n01"]
	at := uint64(time.Now().Add(-time.Second).UnixNano())

	if err := w.EtcdRestored(at); !errors.Is(err, ErrNotMaster) {
		t.Errorf("a worker announced a restore: %v", err)
	}
	if err := m.EtcdRestored(uint64(time.Now().Add(time.Hour).UnixNano())); err == nil {
		t.Error("a restore in the future was announced")
	}
	if err := m.EtcdRestored(at); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n01 to see n00's restore", func() bool {
		return w.state.Snapshot().Nodes["n00"].EtcdRestore == at
	})
	// Seen from another master that follows nothing yet, n00 is the one to follow.
	if name, got, ok := roles.EtcdRestoreToFollow(w.state.Snapshot(), "other", 0); !ok || name != "n00" || got != at {
		t.Errorf("to follow: %s %d %v", name, got, ok)
	}
	var id datadir.Identity
	if err := tc.dir("n00").ReadJSON(datadir.NodeFile, &id); err != nil || id.EtcdRestore != at || id.EtcdFollowed != at {
		t.Errorf("saved identity: restore %d followed %d (%v), want %d", id.EtcdRestore, id.EtcdFollowed, err, at)
	}
	// A later record (a new generation for any reason) still carries it.
	if err := m.publishSelf(nil); err != nil {
		t.Fatal(err)
	}
	if got := m.state.Snapshot().Nodes["n00"].EtcdRestore; got != at {
		t.Errorf("republished record carries restore %d, want %d", got, at)
	}
}
