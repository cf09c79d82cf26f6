//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/e2e/lab"
)

// workerKubeconfig is the kubelet's kubeconfig: the one credential a worker holds, pointing
// at the node-local apiserver endpoint.
const workerKubeconfig = "/etc/kubernetes/kubelet.conf"

// nodeGrace is how long the scenario watches the survivors after a master is lost: longer
// than the node lifecycle controller's grace period (50 s), after which a node whose kubelet
// cannot report is NotReady.
const nodeGrace = 75 * time.Second

// TestScenario9MasterLoss: 3 masters + 1 worker with the echo workload; the first master
// (seat 0, the one every worker's endpoint uses first) is killed for good. The worker's
// endpoint moves to another master; every surviving node stays Ready past the grace period;
// the workload keeps serving through the worker's NodePort; kubectl works from the worker
// with its kubelet's credential through the local endpoint; new pods schedule. Then
// `knode remove` of the lost master frees its seat, and the worker becomes a master.
func TestScenario9MasterLoss(t *testing.T) {
	c := formCluster(t, 4, "--masters", "3")
	ctx := t.Context()
	st, err := status(ctx, c.first())
	if err != nil {
		t.Fatal(err)
	}
	victim := c.first()
	var worker, survivor *lab.Node
	for _, n := range c.nodes[1:] {
		switch m := member(st, n.Name); {
		case m == nil:
			t.Fatalf("%s is not a member: %+v", n.Name, st.Members)
		case slices.Contains(m.Roles, "master") && survivor == nil:
			survivor = n
		case slices.Contains(m.Roles, "worker"):
			worker = n
		}
	}
	if worker == nil || survivor == nil || !slices.Contains(member(st, victim.Name).Roles, "master") {
		t.Fatalf("want the first node a master, another master and a worker: %+v", st.Members)
	}
	checkWorkload(t, c)

	if out, err := worker.Exec(ctx, "grep", "server:", workerKubeconfig); err != nil || !strings.Contains(out, "https://127.0.0.1:6444") {
		t.Fatalf("the worker's kubelet.conf does not name the local endpoint: %q %v", out, err)
	}
	victimAPI := victim.IP + ":6443"
	waitFor(t, "the worker's endpoint uses "+victimAPI, time.Minute, func() (bool, string) {
		st, err := status(ctx, worker)
		if err != nil {
			return false, err.Error()
		}
		return connectedTo(st) == victimAPI, fmt.Sprintf("%+v", st.APIEndpoint)
	})

	if err := victim.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	moved := poll(t, "the worker's endpoint connected to another master", time.Minute, func() (bool, string) {
		st, err := status(ctx, worker)
		if err != nil {
			return false, err.Error()
		}
		to := connectedTo(st)
		return to != "" && to != victimAPI, fmt.Sprintf("%+v", st.APIEndpoint)
	})
	timing(t, "master 0 killed -> worker's endpoint connected to another master", moved)
	poll(t, "kubectl on the worker (kubelet credential, local endpoint)", time.Minute, func() (bool, string) {
		out, err := worker.Exec(ctx, nodeKubectl, "--kubeconfig", workerKubeconfig, "--request-timeout=5s", "get", "node", worker.Name, "-o", "name")
		return err == nil && strings.TrimSpace(out) == "node/"+worker.Name, fmt.Sprintf("%q %v", out, err)
	})
	timing(t, "master 0 killed -> kubectl on the worker answered", time.Since(start))

	// Survivors stay Ready past the grace period; the workload answers throughout.
	url := "http://" + worker.IP + ":30080/hostname"
	fails, tries := 0, 0
	for time.Since(start) < nodeGrace {
		nodes, err := kubeNodes(ctx, survivor)
		if err != nil {
			t.Errorf("kubectl on %s: %v", survivor.Name, err)
		}
		for _, n := range nodes {
			if n.Metadata.Name != victim.Name && !n.Ready() {
				t.Errorf("%s NotReady %s after master 0 stopped", n.Metadata.Name, time.Since(start).Round(time.Second))
			}
		}
		tries++
		if err := get(ctx, url); err != nil {
			fails++
			t.Logf("NodePort %s: %v", url, err)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("NodePort through the worker during the grace period: %d of %d requests failed (a pod on the lost master stays an endpoint until its node is NotReady)", fails, tries)
	waitFor(t, "NodePort "+url+" answers 10 times in a row", time.Minute, func() (bool, string) {
		for i := range 10 {
			if err := get(ctx, url); err != nil {
				return false, fmt.Sprintf("request %d: %v", i, err)
			}
		}
		return true, ""
	})
	// (The Node authorizer lets a kubelet's credential read its own Node only.)
	out, err := worker.Exec(ctx, nodeKubectl, "--kubeconfig", workerKubeconfig, "get", "node", worker.Name,
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if err != nil || strings.TrimSpace(out) != "True" {
		t.Errorf("the worker's own Node through its local endpoint: %v %q", err, out)
	}

	// New pods schedule (on the survivors: the lost master is tainted unreachable by now).
	start = time.Now()
	if out, err := kubectl(ctx, survivor, "create", "deployment", "after-loss", "--image="+echoImage, "--replicas=3",
		"--", "/agnhost", "netexec", "--http-port=8080"); err != nil {
		t.Fatalf("create deployment after-loss: %v\n%s", err, out)
	}
	waitFor(t, "3 after-loss pods Running", readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, survivor, "-l", "app=after-loss")
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range ps {
			if p.Status.Phase == "Running" && p.Spec.NodeName != victim.Name {
				running++
			}
		}
		return running == 3, fmt.Sprintf("%d of %d Running", running, len(ps))
	})
	timing(t, "new deployment Running with master 0 gone", time.Since(start))

	// knode remove on a surviving master: the lost master's etcd member, seat and Node go.
	start = time.Now()
	out, err = knode(ctx, survivor, "remove", victim.Name)
	t.Logf("%s: knode remove %s\n%s", survivor.Name, victim.Name, indent(out))
	if err != nil {
		t.Fatalf("knode remove %s (%s): %s", victim.Name, exitOf(err), lastLines(out, 2))
	}
	timing(t, "knode remove of the lost master returned", time.Since(start))
	// (The worker's member may already be there, unnamed until it starts: the seat is
	// given at once.)
	if ms, err := etcdMembers(ctx, survivor); err != nil || slices.Contains(ms, victim.Name) {
		t.Errorf("etcd members after the removal: %v %v, want no %s", ms, err, victim.Name)
	}
	nodes, err := kubeNodes(ctx, survivor)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Metadata.Name == victim.Name {
			t.Errorf("Node %s still there after knode remove", victim.Name)
		}
	}
	if st, err := status(ctx, survivor); err != nil || member(st, victim.Name) != nil {
		t.Errorf("knode status on %s still lists %s: %v", survivor.Name, victim.Name, err)
	}

	// The free seat goes to the worker with no operator step: three etcd members again.
	waitFor(t, worker.Name+" promoted: a master, etcd at 3 members, its apiserver ready", readyTimeout(), func() (bool, string) {
		st, err := status(ctx, survivor)
		if err != nil {
			return false, err.Error()
		}
		if m := member(st, worker.Name); m == nil || !slices.Contains(m.Roles, "master") {
			return false, fmt.Sprintf("member %+v", m)
		}
		ms, err := etcdMembers(ctx, survivor)
		if err != nil || len(ms) != 3 || !slices.Contains(ms, worker.Name) {
			return false, fmt.Sprintf("etcd members %v %v", ms, err)
		}
		out, err := kubectl(ctx, survivor, "--server", "https://"+worker.IP+":6443", "get", "--raw", "/readyz")
		return err == nil && strings.TrimSpace(out) == "ok", fmt.Sprintf("/readyz on %s: %q %v", worker.Name, out, err)
	})
	timing(t, "knode remove -> the worker promoted, etcd at 3 members, its apiserver ready", time.Since(start))
	waitFor(t, "the 3 remaining nodes Ready", readyTimeout(), func() (bool, string) {
		ready, total, err := readyNodes(ctx, survivor)
		if err != nil {
			return false, err.Error()
		}
		return ready == 3 && total == 3, fmt.Sprintf("%d of %d Ready", ready, total)
	})
}

// TestScenario10MasterResetRejoin: `knode reset` on a healthy master removes its own etcd
// member first; the same host (same address) joins again and is a healthy master with etcd
// back to three members.
func TestScenario10MasterResetRejoin(t *testing.T) {
	c := formCluster(t, 3, "--masters", "3")
	ctx := t.Context()
	m := c.nodes[2]
	if ms, err := etcdMembers(ctx, c.first()); err != nil || len(ms) != 3 {
		t.Fatalf("etcd members %v (%v), want 3", ms, err)
	}
	start := time.Now()
	out, err := knode(ctx, m, "reset")
	t.Logf("%s: knode reset\n%s", m.Name, indent(out))
	if err != nil {
		t.Fatalf("knode reset on %s (%s): %s", m.Name, exitOf(err), lastLines(out, 2))
	}
	timing(t, "knode reset of a master returned", time.Since(start))
	if !strings.Contains(out, "removed this master's etcd member") {
		t.Errorf("knode reset on a master did not report leaving etcd")
	}
	waitFor(t, "etcd without "+m.Name, 30*time.Second, func() (bool, string) {
		ms, err := etcdMembers(ctx, c.first())
		return err == nil && len(ms) == 2 && !slices.Contains(ms, m.Name), fmt.Sprintf("%v %v", ms, err)
	})
	waitFor(t, "Node "+m.Name+" deleted", 2*time.Minute, func() (bool, string) {
		nodes, err := kubeNodes(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Metadata.Name == m.Name {
				return false, "still there"
			}
		}
		return true, ""
	})

	start = time.Now()
	out, err = c.join(ctx, 2)
	t.Logf("%s: knode join again\n%s", m.Name, indent(out))
	if err != nil {
		t.Fatalf("knode join of the reset master (%s): %s", exitOf(err), lastLines(out, 2))
	}
	timing(t, "reset master joined again", time.Since(start))
	waitFor(t, m.Name+" a master again, etcd at 3 members, its apiserver ready", readyTimeout(), func() (bool, string) {
		st, err := status(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		if mm := member(st, m.Name); mm == nil || !slices.Contains(mm.Roles, "master") {
			return false, fmt.Sprintf("member %+v", mm)
		}
		ms, err := etcdMembers(ctx, m)
		if err != nil || len(ms) != 3 || slices.Contains(ms, "") {
			return false, fmt.Sprintf("etcd on %s: %v %v", m.Name, ms, err)
		}
		out, err := kubectl(ctx, m, "--server", "https://"+m.IP+":6443", "get", "--raw", "/readyz")
		return err == nil && strings.TrimSpace(out) == "ok", fmt.Sprintf("/readyz on %s: %q %v", m.Name, out, err)
	})
	c.waitReady(t, 3, start, "all 3 nodes Ready after the rejoin")
}

// poll is waitFor at a finer pace (200 ms), for what is measured in fractions of a second;
// it returns the time since it started.
func poll(t *testing.T, what string, timeout time.Duration, check func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, detail := check()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, detail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// connectedTo is the backend the node's endpoint holds connections to (the one with the
// most), or "".
func connectedTo(st agent.Status) string {
	best, n := "", 0
	for _, b := range st.APIEndpoint {
		if b.Connections > n {
			best, n = b.Addr, b.Connections
		}
	}
	return best
}

// get fetches url from the host with a short timeout; any answer but 200 is an error.
func get(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
