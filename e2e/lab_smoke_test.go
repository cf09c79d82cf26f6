//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke checks the lab itself, without knode: nodes come up with systemd running, reach
// each other on the internal network, run a static binary built on the host, and leave
// nothing behind. It measures node start time, memory per idle node and teardown time.
func TestSmoke(t *testing.T) {
	ctx := t.Context()
	const n = 3
	start := time.Now()
	nodes, err := theLab.Up(ctx, n, "")
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	timing(t, "3 nodes up, systemd running", time.Since(start))
	removed := false
	t.Cleanup(func() {
		if !removed && !(keep() && t.Failed()) {
			_ = theLab.Down(context.Background())
		}
	})

	for _, nd := range nodes {
		out, err := nd.Exec(ctx, "systemctl", "is-system-running")
		if strings.TrimSpace(out) != "running" {
			t.Errorf("%s: systemd %q (%v)", nd.Name, strings.TrimSpace(out), err)
		}
		// lab notes workaround 3 and the sysctl shadows, baked into the image
		if out, err := nd.Exec(ctx, "findmnt", "-no", "PROPAGATION", "/"); err != nil || !strings.Contains(out, "shared") {
			t.Errorf("%s: / is not shared (%q, %v)", nd.Name, strings.TrimSpace(out), err)
		}
		if out, err := nd.Sh(ctx, "echo 0 > /proc/sys/vm/overcommit_memory"); err == nil {
			t.Errorf("%s: host-global sysctl vm.overcommit_memory is writable from the node (%s)", nd.Name, out)
		}
	}

	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if _, err := a.Exec(ctx, "ping", "-c1", "-W2", b.IP); err != nil {
				t.Errorf("%s cannot ping %s (%s): %v", a.Name, b.Name, b.IP, err)
			}
		}
	}

	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./testdata/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the static test binary: %v\n%s", err, out)
	}
	if err := nodes[0].CopyIn(ctx, bin, "/usr/local/bin/hello"); err != nil {
		t.Fatal(err)
	}
	if out, err := nodes[0].Exec(ctx, "hello"); err != nil || !strings.Contains(out, "hello from "+nodes[0].Name) {
		t.Errorf("static binary in %s: %q, %v", nodes[0].Name, out, err)
	}

	for _, nd := range nodes {
		m, err := nd.Memory(ctx)
		if err != nil {
			t.Errorf("memory of %s: %v", nd.Name, err)
			continue
		}
		t.Logf("MEMORY %s idle: %s", nd.Name, m)
	}

	// restart keeps a node usable (scenario 5 relies on it)
	t0 := time.Now()
	if err := nodes[1].Restart(ctx); err != nil {
		t.Errorf("restart %s: %v", nodes[1].Name, err)
	}
	timing(t, "node restart to systemd running", time.Since(t0))

	before, err := nodes[2].NetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := nodes[2].NetState(ctx)
	if err != nil || before != after {
		t.Errorf("network state of an untouched node changed between two snapshots (%v):\n%s\n---\n%s", err, before, after)
	}

	t0 = time.Now()
	if err := theLab.Down(ctx); err != nil {
		t.Fatalf("remove nodes: %v", err)
	}
	removed = true
	timing(t, "3 nodes, volumes and network removed", time.Since(t0))
	left, err := theLab.Leftovers(ctx)
	if err != nil || len(left) > 0 {
		t.Errorf("left behind after teardown: %v (%v)", left, err)
	}
}
