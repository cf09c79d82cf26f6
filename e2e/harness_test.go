//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/e2e/lab"
)

// Where knode puts things on a node (hostprep and datadir defaults); the harness reaches the
// payload's kubectl and ctr through them when `knode kubectl` is not there.
const (
	nodeKubectl     = "/var/lib/knode/bin/kubectl"
	nodeCtr         = "/var/lib/knode/bin/ctr"
	nodeEtcdctl     = "/var/lib/knode/bin/etcdctl"
	adminKubeconfig = "/etc/kubernetes/admin.conf"
	gossipPort      = "7946"
	podRange        = "10.10.0.0/16"
)

// readyTimeout bounds every wait for the cluster (KNODE_E2E_READY_TIMEOUT, default 10m).
func readyTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KNODE_E2E_READY_TIMEOUT")); err == nil {
		return d
	}
	return 10 * time.Minute
}

// timing logs one measured figure in a form that is easy to grep: "TIMING <what>: 12.3s".
func timing(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("TIMING %s: %.1fs", what, d.Seconds())
}

// knodeBin returns the knode binary to test: $KNODE_BIN, else bin/knode of this repository.
func knodeBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("KNODE_BIN")
	if p == "" {
		p, _ = filepath.Abs("../bin/knode")
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("no knode binary at %s: build it with `make all` (bin/knode with its payload) or set KNODE_BIN", p)
	}
	return p
}

// startNodes starts n fresh nodes (with knodeBin copied in, when not empty) that are removed
// when the test ends; with KNODE_E2E_KEEP=1 a failed test leaves them running.
func startNodes(t *testing.T, n int, knodeBin string) []*lab.Node {
	t.Helper()
	start := time.Now()
	nodes, err := theLab.Up(t.Context(), n, knodeBin)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	timing(t, fmt.Sprintf("%d nodes up, systemd running", n), time.Since(start))
	t.Cleanup(func() {
		if keep() && t.Failed() {
			t.Logf("KNODE_E2E_KEEP=1: nodes left running; `make lab-down` removes them")
			return
		}
		t0 := time.Now()
		if err := theLab.Down(context.Background()); err != nil {
			t.Errorf("lab: remove nodes: %v", err)
		}
		timing(t, "nodes removed", time.Since(t0))
	})
	return nodes
}

// waitFor polls check every 2 s until it reports done or timeout passes, logging progress every
// 15 s; on timeout the test fails with the last detail check gave.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() (done bool, detail string)) time.Duration {
	t.Helper()
	start := time.Now()
	lastLog := start
	detail := ""
	for {
		var done bool
		done, detail = check()
		if done {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, detail)
		}
		if time.Since(lastLog) > 15*time.Second {
			t.Logf("still waiting for %s (%.0fs): %s", what, time.Since(start).Seconds(), detail)
			lastLog = time.Now()
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("interrupted waiting for %s", what)
		case <-time.After(2 * time.Second):
		}
	}
}

// knode runs the knode CLI on a node.
func knode(ctx context.Context, n *lab.Node, args ...string) (string, error) {
	return n.Exec(ctx, append([]string{"knode"}, args...)...)
}

// kubectl runs kubectl with the admin kubeconfig on a master: `knode kubectl` when the CLI has
// it, else the payload's kubectl.
func kubectl(ctx context.Context, n *lab.Node, args ...string) (string, error) {
	out, err := knode(ctx, n, append([]string{"kubectl"}, args...)...)
	if err != nil && regexp.MustCompile(`(?i)no help topic|unknown command|command not found`).MatchString(out) {
		return n.Exec(ctx, append([]string{nodeKubectl, "--kubeconfig", adminKubeconfig}, args...)...)
	}
	return out, err
}

// status returns `knode status --json` of a node (exit code 3 only says
// the cluster is not healthy: the status is there).
func status(ctx context.Context, n *lab.Node) (agent.Status, error) {
	var st agent.Status
	out, err := n.Exec(ctx, "knode", "status", "--json")
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("%s: knode status --json: %w: %.300s", n.Name, err, out)
	}
	return st, nil
}

// cluster is a formed knode cluster in the lab.
type cluster struct {
	t     *testing.T
	nodes []*lab.Node
	token string
}

func (c *cluster) first() *lab.Node { return c.nodes[0] }

var tokenRE = regexp.MustCompile(`--token[= ]+(\S+)`)

// initCluster starts n nodes with knode and runs `knode init ARGS` on the first; the others are
// not joined. It fails the test when init fails or prints no join token.
func initCluster(t *testing.T, n int, initArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: startNodes(t, n, knodeBin(t))}
	ctx := t.Context()
	start := time.Now()
	out, err := knode(ctx, c.first(), append([]string{"init"}, initArgs...)...)
	t.Logf("%s: knode init %s\n%s", c.first().Name, strings.Join(initArgs, " "), indent(out))
	if err != nil {
		t.Fatalf("knode init failed on %s (%s): %s", c.first().Name, exitOf(err), lastLines(out, 2))
	}
	timing(t, "knode init returned", time.Since(start))
	// The first join command printed: with --masters 3 or 5, the master token's (the first nodes
	// to join take the free seats, later ones are workers).
	if m := tokenRE.FindStringSubmatch(out); m != nil {
		c.token = m[1]
	} else if tok, err := knode(ctx, c.first(), "token"); err == nil && strings.TrimSpace(tok) != "" {
		t.Logf("knode init printed no `--token T`; using `knode token`")
		c.token = strings.TrimSpace(tok)
	} else {
		t.Fatalf("knode init printed no join command with --token, and `knode token` failed: %v", err)
	}
	c.waitReady(t, 1, start, "first node Ready after knode init")
	return c
}

// join runs `knode join <first>:7946 --token T ARGS` on node i (0-based) and returns its
// output and error without failing the test.
func (c *cluster) join(ctx context.Context, i int, args ...string) (string, error) {
	full := append([]string{"join", c.first().IP + ":" + gossipPort, "--token", c.token}, args...)
	return knode(ctx, c.nodes[i], full...)
}

// joinAll joins every node but the first, one after another as a user would, and waits until
// all are Ready.
func (c *cluster) joinAll(t *testing.T, args ...string) {
	t.Helper()
	for i := 1; i < len(c.nodes); i++ {
		start := time.Now()
		out, err := c.join(t.Context(), i, args...)
		t.Logf("%s: knode join\n%s", c.nodes[i].Name, indent(out))
		if err != nil {
			t.Fatalf("knode join failed on %s (%s): %s", c.nodes[i].Name, exitOf(err), lastLines(out, 2))
		}
		timing(t, c.nodes[i].Name+": knode join returned", time.Since(start))
	}
	c.waitReady(t, len(c.nodes), time.Now(), fmt.Sprintf("all %d nodes Ready after the joins", len(c.nodes)))
}

// formCluster is initCluster plus joinAll.
func formCluster(t *testing.T, n int, initArgs ...string) *cluster {
	t.Helper()
	start := time.Now()
	c := initCluster(t, n, initArgs...)
	c.joinAll(t)
	timing(t, fmt.Sprintf("%d-node cluster formed (init to all Ready)", n), time.Since(start))
	return c
}

// waitReady waits until at least want Node objects are Ready and logs the time since start.
func (c *cluster) waitReady(t *testing.T, want int, start time.Time, what string) {
	t.Helper()
	waitFor(t, what, readyTimeout(), func() (bool, string) {
		ready, _, err := readyNodes(t.Context(), c.first())
		if err != nil {
			return false, err.Error()
		}
		return ready >= want, fmt.Sprintf("%d/%d Ready", ready, want)
	})
	timing(t, what, time.Since(start))
}

// readyNodes counts the Node objects, and the Ready ones, as node on sees them.
func readyNodes(ctx context.Context, on *lab.Node) (ready, total int, err error) {
	nodes, err := kubeNodes(ctx, on)
	for _, n := range nodes {
		if n.Ready() {
			ready++
		}
	}
	return ready, len(nodes), err
}

// kubeNode is the part of a Node object the scenarios look at.
type kubeNode struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR string `json:"podCIDR"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

// Ready reports the node's Ready condition.
func (n kubeNode) Ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func kubeNodes(ctx context.Context, on *lab.Node) ([]kubeNode, error) {
	out, err := kubectl(ctx, on, "get", "nodes", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []kubeNode `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes -o json: %w: %.200s", err, out)
	}
	return list.Items, nil
}

// kubePod is the part of a Pod object the scenarios look at.
type kubePod struct {
	Metadata struct {
		Name        string            `json:"name"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase             string `json:"phase"`
		PodIP             string `json:"podIP"`
		ContainerStatuses []struct {
			ImageID string `json:"imageID"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func kubePods(ctx context.Context, on *lab.Node, args ...string) ([]kubePod, error) {
	out, err := kubectl(ctx, on, append([]string{"get", "pods", "-o", "json"}, args...)...)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []kubePod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get pods -o json: %w: %.200s", err, out)
	}
	return list.Items, nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// exitOf names how a command failed: its exit status, or the error when it did not run.
func exitOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}

// lastLines returns the last n non-empty lines of out, joined by " | ".
func lastLines(out string, n int) string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, strings.TrimSpace(l))
		}
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}
