//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// TestScenarioHealth: `knode status` tells whether the cluster works. On a formed cluster every
// node reports healthy and `knode status --wait` exits 0; a worker's kubelet stopped shows as a
// problem on the master's status (exit code 3) within seconds, and the cluster is healthy again
// once it starts. Then `knode check` runs its end-to-end checks on the cluster.
func TestScenarioHealth(t *testing.T) {
	c := formCluster(t, 3, "--masters", "1")
	ctx := t.Context()
	master, worker := c.first(), c.nodes[2]

	start := time.Now()
	out, err := knode(ctx, master, "status", "--wait", "--timeout", "3m")
	t.Logf("%s: knode status --wait\n%s", master.Name, indent(out))
	if err != nil {
		t.Fatalf("cluster not healthy after forming (%s)", exitOf(err))
	}
	timing(t, "all Ready to knode status healthy", time.Since(start))
	st, err := status(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		want := 4
		if slices.Contains(m.Roles, "master") {
			want = 8
		}
		if m.Health == nil || len(m.Health.Checks) != want || m.Health.KubeletVersion == "" || m.Health.CertExpiry == nil {
			t.Errorf("%s: health %+v, want %d checks, a kubelet version and a certificate expiry", m.Name, m.Health, want)
		}
	}

	// Roles: the master's Node carries the control-plane label, a worker's does not.
	waitFor(t, "the master's Node labelled control-plane", time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, master, "get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "node/"+master.Name, fmt.Sprintf("%q %v", out, err)
	})
	// The node tools on a worker: crictl on its containerd; kubectl without a kubeconfig
	// says so in one line; an unknown command lists the commands.
	if out, err := knode(ctx, worker, "crictl", "pods"); err != nil || !strings.Contains(out, "POD ID") {
		t.Errorf("knode crictl pods on %s: %v\n%s", worker.Name, err, out)
	}
	if out, err := knode(ctx, worker, "kubectl", "get", "nodes"); err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 ||
		!strings.Contains(out, "no admin kubeconfig on this node") {
		t.Errorf("knode kubectl on a worker: %v\n%s", err, out)
	}
	if out, err := knode(ctx, worker, "images"); err == nil || !strings.Contains(out, `unknown command "images"`) {
		t.Errorf("knode images: %v\n%s", err, out)
	}

	for range 3 { // three rounds, for a median
		if _, err := worker.Exec(ctx, "systemctl", "stop", "kubelet"); err != nil {
			t.Fatal(err)
		}
		took := pollStatus(t, ctx, master, "the stopped kubelet of "+worker.Name+" reported on "+master.Name, func(out string, code int) bool {
			return code == 3 && strings.Contains(out, worker.Name+": kubelet: kubelet.service inactive")
		})
		timing(t, "stopped kubelet reported on the master", took)
		if _, err := worker.Exec(ctx, "systemctl", "start", "kubelet"); err != nil {
			t.Fatal(err)
		}
		took = pollStatus(t, ctx, master, "the cluster healthy again", func(out string, code int) bool { return code == 0 })
		timing(t, "started kubelet: cluster healthy again", took)
	}

	out, err = knode(ctx, master, "check")
	t.Logf("%s: knode check\n%s", master.Name, indent(out))
	if err != nil {
		t.Errorf("knode check failed (%s)", exitOf(err))
	}
	if out, err := kubectl(ctx, master, "get", "namespaces", "-o", "name"); err != nil || strings.Contains(out, "knode-check") {
		t.Errorf("knode check left its namespace behind: %v\n%s", err, out)
	}
}

// pollStatus runs `knode status` on n every half second until ok holds with its output and
// exit code, and returns how long that took.
func pollStatus(t *testing.T, ctx context.Context, n *lab.Node, what string, ok func(out string, code int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var out string
	for time.Since(start) < time.Minute {
		var err error
		out, err = knode(ctx, n, "status")
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			code = -1
		}
		if ok(out, code) {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("timed out after a minute waiting for %s; last status:\n%s", what, out)
	return 0
}
