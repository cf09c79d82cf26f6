//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScenarioSnapshotRestore: the snapshot round trip on 3 masters. A ConfigMap written
// before `knode etcd snapshot save` and deleted after it, and one written after it; then
// `knode etcd restore` on the first master: the first is back, the second gone, through every
// master's own apiserver; the other two masters rejoined the restored etcd with no step of
// ours (three members again), and every node is Ready. Before that, the command's refusals:
// a damaged copy of the snapshot, and a healthy etcd without --force.
func TestScenarioSnapshotRestore(t *testing.T) {
	c := formCluster(t, 3, "--masters", "3")
	ctx := t.Context()
	m0 := c.first()
	if out, err := kubectl(ctx, m0, "create", "configmap", "before-snapshot", "--from-literal=v=1"); err != nil {
		t.Fatalf("create configmap: %v: %s", err, out)
	}
	out, err := knode(ctx, m0, "etcd", "snapshot", "save", "--json")
	if err != nil {
		t.Fatalf("knode etcd snapshot save (%s): %s", exitOf(err), lastLines(out, 3))
	}
	var saved struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(lastLines(out, 1)), &saved); err != nil || saved.Path == "" {
		t.Fatalf("snapshot save --json: %q %v", out, err)
	}
	for _, args := range [][]string{
		{"delete", "configmap", "before-snapshot"},
		{"create", "configmap", "after-snapshot", "--from-literal=v=2"},
	} {
		if out, err := kubectl(ctx, m0, args...); err != nil {
			t.Fatalf("kubectl %v: %v: %s", args, err, out)
		}
	}

	// Refusals, each changing nothing.
	bad := "/tmp/damaged.db"
	if out, err := m0.Sh(ctx, "cp "+saved.Path+" "+bad+" && printf x | dd of="+bad+" bs=1 seek=5000 conv=notrunc status=none"); err != nil {
		t.Fatalf("damage a copy: %v: %s", err, out)
	}
	if out, err := knode(ctx, m0, "etcd", "restore", bad, "--force"); err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("restore of a damaged snapshot: %v: %s", err, lastLines(out, 2))
	}
	if out, err := knode(ctx, m0, "etcd", "restore", saved.Path); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("restore over a healthy etcd without --force: %v: %s", err, lastLines(out, 2))
	}
	out, err = knode(ctx, m0, "etcd", "restore", saved.Path, "--dry-run")
	t.Logf("knode etcd restore --dry-run\n%s", indent(out))
	if err != nil || !strings.Contains(out, "etcdutl") {
		t.Errorf("restore --dry-run: %v", err)
	}
	if ms, err := etcdMembers(ctx, m0); err != nil || len(ms) != 3 {
		t.Fatalf("etcd after the refusals: %v %v", ms, err)
	}

	start := time.Now()
	out, err = knode(ctx, m0, "etcd", "restore", saved.Path, "--force")
	t.Logf("knode etcd restore\n%s", indent(out))
	if err != nil {
		diag, _ := m0.Sh(ctx, "knode crictl ps -a --name etcd; for c in $(knode crictl ps -a -q --name etcd | head -3); do echo \"== $c\"; knode crictl logs --tail 15 $c 2>&1; done; "+
			"ls -la /var/lib/etcd /var/lib/etcd-restores; journalctl -u kubelet --no-pager -n 400 | grep -i etcd | tail -25")
		t.Logf("diagnostics on %s:\n%s", m0.Name, indent(diag))
		t.Fatalf("knode etcd restore (%s): %s", exitOf(err), lastLines(out, 3))
	}
	timing(t, "knode etcd restore returned", time.Since(start))
	if out, err := m0.Sh(ctx, "ls -d /var/lib/etcd-restores/*.before/member"); err != nil {
		t.Errorf("previous etcd data not kept: %v: %s", err, out)
	}
	waitFor(t, "every master in the restored etcd (3 started members), each apiserver ready", readyTimeout(), func() (bool, string) {
		for _, m := range c.nodes {
			ms, err := etcdMembers(ctx, m)
			if err != nil || len(ms) != 3 || slices.Contains(ms, "") {
				return false, fmt.Sprintf("etcd on %s: %v %v", m.Name, ms, err)
			}
			out, err := kubectl(ctx, m, "--server", "https://"+m.IP+":6443", "get", "--raw", "/readyz")
			if err != nil || strings.TrimSpace(out) != "ok" {
				return false, fmt.Sprintf("/readyz on %s: %q %v", m.Name, lastLines(out, 1), err)
			}
		}
		return true, ""
	})
	timing(t, "restore to 3 etcd members and 3 ready apiservers", time.Since(start))
	for _, m := range c.nodes {
		server := "https://" + m.IP + ":6443"
		waitFor(t, "the restored ConfigMaps through "+m.Name+"'s apiserver", time.Minute, func() (bool, string) {
			out, err := kubectl(ctx, m, "--server", server, "get", "configmaps", "-o", "name")
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(out, "configmap/before-snapshot") && !strings.Contains(out, "configmap/after-snapshot"), out
		})
	}
	c.waitReady(t, 3, start, "all 3 nodes Ready after the restore")
	if out, err := kubectl(ctx, m0, "create", "configmap", "after-restore", "--from-literal=v=3"); err != nil {
		t.Errorf("write after the restore: %v: %s", err, out)
	}
}
