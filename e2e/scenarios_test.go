//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/e2e/lab"
)

// The scenarios of issue 4, numbered as there. Each forms its own cluster from fresh nodes,
// logs "TIMING ..." lines and removes its nodes at the end.

// TestScenario1Form: 1 master + 3 workers, all Ready, membership, CIDRs, control plane, DNS.
func TestScenario1Form(t *testing.T) {
	c := formCluster(t, 4, "--masters", "1")
	checkFormation(t, c, 1)
	checkSnapshot(t, c.first())
}

// checkSnapshot saves an etcd snapshot on a master (etcd's snapshot call through its JSON
// gateway), finds it in the list, and has the payload's etcdutl read it.
func checkSnapshot(t *testing.T, master *lab.Node) {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	out, err := knode(ctx, master, "etcd", "snapshot", "save", "--json")
	if err != nil {
		t.Fatalf("knode etcd snapshot save: %v\n%s", err, out)
	}
	timing(t, "knode etcd snapshot save", time.Since(start))
	var saved struct{ Path string }
	if err := json.Unmarshal([]byte(jsonPart(out, "{")), &saved); err != nil || saved.Path == "" {
		t.Fatalf("knode etcd snapshot save --json: %v\n%s", err, out)
	}
	out, err = knode(ctx, master, "etcd", "snapshot", "list", "--json")
	var files []struct {
		Path, Kind string
		Size       int64
	}
	if err != nil || json.Unmarshal([]byte(jsonPart(out, "[")), &files) != nil || len(files) == 0 || files[0].Path != saved.Path || files[0].Kind != "manual" || files[0].Size == 0 {
		t.Fatalf("knode etcd snapshot list --json after saving %s: %v\n%s", saved.Path, err, out)
	}
	out, err = master.Exec(ctx, "/var/lib/knode/bin/etcdutl", "snapshot", "status", saved.Path, "-w", "json")
	if err != nil || !strings.Contains(out, `"totalKey"`) {
		t.Fatalf("etcdutl snapshot status %s: %v\n%s", saved.Path, err, out)
	}
	t.Logf("snapshot %s (%d bytes): etcdutl: %s", saved.Path, files[0].Size, strings.TrimSpace(out))
}

// jsonPart is out (a command's stdout and stderr together) from the first line that starts
// with open: the JSON document after any log lines.
func jsonPart(out, open string) string {
	for i := 0; i < len(out); {
		if strings.HasPrefix(out[i:], open) {
			return out[i:]
		}
		j := strings.IndexByte(out[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return out
}

// TestScenario2Workload: an echo Deployment spread over 4 nodes, reached pod to pod, through
// its Service IP and name, and through a NodePort from the host.
func TestScenario2Workload(t *testing.T) {
	c := formCluster(t, 4, "--masters", "1")
	checkWorkload(t, c)
}

// TestScenario3HostKubectl: the host's own kubectl (another version) lists the nodes through
// the exported admin kubeconfig, which points at the master's lab address.
func TestScenario3HostKubectl(t *testing.T) {
	hostKubectl, err := exec.LookPath("/usr/bin/kubectl")
	if err != nil {
		t.Skip("no kubectl client on the host at /usr/bin/kubectl")
	}
	c := formCluster(t, 2)
	raw, err := kubectl(t.Context(), c.first(), "config", "view", "--raw", "--minify")
	if err != nil || !strings.Contains(raw, "server:") {
		out, err2 := c.first().Exec(t.Context(), "cat", adminKubeconfig)
		if err2 != nil {
			t.Fatalf("no admin kubeconfig: `knode kubectl config view --raw`: %v; %s: %v", err, adminKubeconfig, err2)
		}
		raw = out
	}
	// The node-local endpoint (127.0.0.1:6444) becomes the master's own apiserver.
	server := regexp.MustCompile(`(server:\s*https://)(127\.0\.0\.1|localhost)(:\d+)?`)
	kc := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(kc, []byte(server.ReplaceAllString(raw, "${1}"+c.first().IP+":6443")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), hostKubectl, "--kubeconfig", kc, "get", "nodes", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("host kubectl get nodes: %v\n%s", err, out)
	}
	for _, n := range c.nodes {
		if !strings.Contains(string(out), "node/"+n.Name) {
			t.Errorf("host kubectl does not list %s:\n%s", n.Name, out)
		}
	}
}

// TestScenario4HA: 3 masters + 1 worker; etcd has 3 members; with one master stopped the
// others still serve writes and knode reports it dead; started again it rejoins by itself.
func TestScenario4HA(t *testing.T) {
	c := formCluster(t, 4, "--masters", "3")
	ctx := t.Context()
	st, err := status(ctx, c.first())
	if err != nil {
		t.Fatal(err)
	}
	var masters []string
	for _, m := range st.Members {
		if slices.Contains(m.Roles, "master") {
			masters = append(masters, m.Name)
		}
	}
	if len(masters) != 3 {
		t.Fatalf("%d masters (%v), want 3", len(masters), masters)
	}
	members, err := etcdMembers(ctx, c.first())
	if err != nil || len(members) != 3 {
		t.Fatalf("etcd members %v (%v), want 3", members, err)
	}

	// Stop a master other than the first (the harness talks to the first).
	var victim = c.nodes[0]
	for _, n := range c.nodes[1:] {
		if slices.Contains(masters, n.Name) {
			victim = n
			break
		}
	}
	start := time.Now()
	if err := victim.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "knode status on "+c.first().Name+" reports "+victim.Name+" dead", 2*time.Minute, func() (bool, string) {
		st, err := status(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		m := member(st, victim.Name)
		return m != nil && m.State == "dead", fmt.Sprintf("%+v", m)
	})
	timing(t, "stopped master reported dead", time.Since(start))
	for i := range 3 {
		name := fmt.Sprintf("ha-write-%d", i)
		if out, err := kubectl(ctx, c.first(), "create", "configmap", name, "--from-literal=k=v"); err != nil {
			t.Errorf("write with one master down: %v\n%s", err, out)
		}
	}

	start = time.Now()
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, victim.Name+" alive again, etcd back to 3 members, its apiserver answering", readyTimeout(), func() (bool, string) {
		st, err := status(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		if m := member(st, victim.Name); m == nil || m.State != "alive" {
			return false, fmt.Sprintf("member %+v", m)
		}
		ms, err := etcdMembers(ctx, victim)
		if err != nil || len(ms) != 3 {
			return false, fmt.Sprintf("etcd on %s: %v %v", victim.Name, ms, err)
		}
		// Its own apiserver, not the node-local endpoint (which another master answers).
		out, err := kubectl(ctx, victim, "--server", "https://"+victim.IP+":6443", "get", "--raw", "/readyz")
		return err == nil && strings.TrimSpace(out) == "ok", fmt.Sprintf("/readyz on %s: %q %v", victim.Name, out, err)
	})
	timing(t, "restarted master healthy again", time.Since(start))
}

func member(st agent.Status, name string) *agent.MemberStatus {
	for i := range st.Members {
		if st.Members[i].Name == name {
			return &st.Members[i]
		}
	}
	return nil
}

// TestScenario5Restart: a restarted worker comes back Ready with the same pod CIDR, and the
// pods scheduled there run again.
func TestScenario5Restart(t *testing.T) {
	c := formCluster(t, 3)
	ctx := t.Context()
	worker := c.nodes[len(c.nodes)-1]
	importImage(t, c.nodes, echoImageTar(t))
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: default}
spec:
  nodeName: %s
  containers:
  - {name: echo, image: %s, imagePullPolicy: Never, args: ["netexec", "--http-port=8080"]}
`, worker.Name, echoImage)
	if out, err := c.first().ExecInput(ctx, []byte(pod), nodeKubectl, "--kubeconfig", adminKubeconfig, "apply", "-f", "-"); err != nil {
		t.Fatalf("create pod: %v\n%s", err, out)
	}
	podRunning := func() (bool, string) {
		out, err := kubectl(ctx, c.first(), "get", "pod", "pinned", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].ready}")
		return err == nil && strings.TrimSpace(out) == "Running true", fmt.Sprintf("%q %v", out, err)
	}
	waitFor(t, "pod pinned Running on "+worker.Name, readyTimeout(), podRunning)
	cidrBefore := nodeCIDR(t, c, worker.Name)

	start := time.Now()
	if err := worker.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, len(c.nodes), start, worker.Name+" Ready again after a container restart")
	if cidr := nodeCIDR(t, c, worker.Name); cidr != cidrBefore {
		t.Errorf("%s came back with pod CIDR %s, had %s", worker.Name, cidr, cidrBefore)
	}
	// After the restart containerd's volume survived but every task died: the kubelet must
	// run the pod again.
	waitFor(t, "pod pinned Running again on "+worker.Name, readyTimeout(), podRunning)
	timing(t, "worker restart to its pod Running again", time.Since(start))
}

// nodeCIDR is the pod CIDR of a node as knode status on the first node and the Node object
// agree on it; it fails the test when they disagree.
func nodeCIDR(t *testing.T, c *cluster, name string) string {
	t.Helper()
	st, err := status(t.Context(), c.first())
	if err != nil {
		t.Fatal(err)
	}
	m := member(st, name)
	if m == nil {
		t.Fatalf("%s not in knode status", name)
	}
	spec, err := kubectl(t.Context(), c.first(), "get", "node", name, "-o", "jsonpath={.spec.podCIDR}")
	if err != nil || strings.TrimSpace(spec) != m.PodCIDR {
		t.Errorf("%s: knode status says pod CIDR %s, the Node object %q (%v)", name, m.PodCIDR, spec, err)
	}
	return m.PodCIDR
}

// TestScenario6Vxlan: scenarios 1 and 2 with the overlay network.
func TestScenario6Vxlan(t *testing.T) {
	c := formCluster(t, 4, "--masters", "1", "--network", "vxlan")
	for _, n := range c.nodes {
		if out, err := n.Exec(t.Context(), "ip", "-d", "link", "show", "type", "vxlan"); err != nil || !strings.Contains(out, "vxlan id") {
			t.Errorf("%s has no vxlan device: %v\n%s", n.Name, err, out)
		}
	}
	checkFormation(t, c, 1)
	checkWorkload(t, c)
}

// TestScenario7Reset: `knode reset` on a worker removes it from membership and from the
// Node objects, and its network state equals what it was before `join`.
func TestScenario7Reset(t *testing.T) {
	c := initCluster(t, 3)
	ctx := t.Context()
	worker := c.nodes[2]
	before, err := worker.NetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.joinAll(t)

	during, err := worker.NetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if during == before {
		t.Errorf("joining changed nothing in %s's network state: the snapshot cannot see knode's changes", worker.Name)
	}
	runPodOn(t, c, worker)

	start := time.Now()
	out, err := knode(ctx, worker, "reset")
	t.Logf("%s: knode reset\n%s", worker.Name, indent(out))
	if err != nil {
		t.Fatalf("knode reset on %s (%s): %s", worker.Name, exitOf(err), lastLines(out, 2))
	}
	timing(t, "knode reset returned", time.Since(start))

	after, err := worker.NetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("network state of %s after reset differs from before join:\n%s", worker.Name, diffLines(before, after))
	}
	// Its pods' containers are gone: shims outlive containerd.service, so
	// only their removal through the runtime ends them. (The brackets keep
	// pgrep from finding the shell running it.)
	if left, _ := worker.Sh(ctx, "pgrep -a -f 'containerd-shi[m]|/paus[e]|agnhos[t] pause' || true"); strings.TrimSpace(left) != "" {
		t.Errorf("processes of pods left on %s after reset:\n%s", worker.Name, left)
	}

	waitFor(t, worker.Name+" gone from knode status on "+c.first().Name, 2*time.Minute, func() (bool, string) {
		st, err := status(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		m := member(st, worker.Name)
		return m == nil || m.State == "left", fmt.Sprintf("%+v", m)
	})
	waitFor(t, "Node "+worker.Name+" deleted or NotReady", 3*time.Minute, func() (bool, string) {
		nodes, err := kubeNodes(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Metadata.Name == worker.Name {
				return !n.Ready(), "still there and Ready"
			}
		}
		return true, ""
	})
	timing(t, "reset to the worker gone from the cluster", time.Since(start))
}

// TestScenario8BadInput: joins that must fail with a clear error and leave the cluster as it
// was: a wrong token, another cluster's token, an unreachable peer, and a node whose own
// address lies inside the pod range.
func TestScenario8BadInput(t *testing.T) {
	c := initCluster(t, 4)
	ctx := t.Context()
	if out, err := c.join(ctx, 1); err != nil {
		t.Fatalf("a good join failed: %v\n%s", err, out)
	}
	c.waitReady(t, 2, time.Now(), "2 nodes Ready")
	probe, other := c.nodes[2], c.nodes[3]

	// another cluster's token: node 4 makes a cluster of its own
	otherOut, err := knode(ctx, other, "init", "--cluster-name", "other")
	if err != nil {
		t.Fatalf("knode init of a second cluster on %s: %v\n%s", other.Name, err, otherOut)
	}
	m := tokenRE.FindStringSubmatch(otherOut)
	if m == nil {
		t.Fatalf("second cluster's init printed no --token:\n%s", otherOut)
	}
	otherToken := m[1]

	snapshot := func() string {
		st, err := status(ctx, c.first())
		if err != nil {
			t.Fatalf("knode status: %v", err)
		}
		var s []string
		for _, m := range st.Members {
			s = append(s, m.Name+" "+m.PodCIDR+" "+strings.Join(m.Roles, ","))
		}
		nodes, _ := kubeNodes(ctx, c.first())
		for _, n := range nodes {
			s = append(s, "node/"+n.Metadata.Name)
		}
		slices.Sort(s)
		return strings.Join(s, "\n")
	}
	want := snapshot()

	wrong := []byte(c.token)
	wrong[len(wrong)-2] ^= 1 // still well-formed, different secret
	cases := []struct {
		name  string
		setup string // shell run on the probe before the join
		args  []string
		errRE string // what a clear message mentions
	}{
		{"wrong token", "", []string{"join", c.first().IP + ":" + gossipPort, "--token", string(wrong)}, `(?i)token|secret|auth|decrypt`},
		{"another cluster's token", "", []string{"join", c.first().IP + ":" + gossipPort, "--token", otherToken}, `(?i)token|cluster|CA|secret|auth|decrypt`},
		// an unused address of the lab network: nothing answers there
		{"unreachable peer", "", []string{"join", strings.TrimSuffix(theLab.Subnet, ".0/24") + ".250:" + gossipPort, "--token", c.token}, `(?i)unreachable|timeout|timed out|connect|no route|refused`},
		{"own address inside the pod range", "ip addr add 10.10.200.5/24 dev eth0", []string{"join", c.first().IP + ":" + gossipPort, "--token", c.token}, `(?i)10\.10\.|pod range|overlap|pod cidr`},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if tc.setup != "" {
				if out, err := probe.Sh(ctx, tc.setup); err != nil {
					t.Fatalf("setup: %v\n%s", err, out)
				}
				t.Cleanup(func() { _, _ = probe.Sh(ctx, strings.Replace(tc.setup, " add ", " del ", 1)) })
			}
			start := time.Now()
			out, err := knode(ctx, probe, tc.args...)
			timing(t, "rejected join ("+tc.name+")", time.Since(start))
			if err == nil {
				t.Fatalf("join with %s succeeded:\n%s", tc.name, out)
			}
			if !regexp.MustCompile(tc.errRE).MatchString(out) {
				t.Errorf("join with %s: the error does not say what is wrong (want /%s/):\n%s", tc.name, tc.errRE, out)
			}
			if time.Since(start) > 2*time.Minute {
				t.Errorf("join with %s took %s to fail", tc.name, time.Since(start).Round(time.Second))
			}
			if got := snapshot(); got != want {
				t.Errorf("cluster changed after a rejected join (%s):\nbefore:\n%s\nafter:\n%s", tc.name, want, got)
			}
		})
	}
}

// runPodOn runs a pod on node n (agnhost pause, bound to n by nodeName)
// and waits until it is Running.
func runPodOn(t *testing.T, c *cluster, n *lab.Node) {
	t.Helper()
	ctx := t.Context()
	importImage(t, []*lab.Node{n}, echoImageTar(t))
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: on-%[1]s, namespace: default}
spec:
  nodeName: %[1]s
  tolerations: [{operator: Exists}]
  containers:
  - {name: pause, image: %[2]s, imagePullPolicy: Never, args: ["pause"]}
`, n.Name, echoImage)
	if out, err := c.first().ExecInput(ctx, []byte(pod), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply a pod on %s: %v\n%s", n.Name, err, out)
	}
	waitFor(t, "pod on-"+n.Name+" Running", readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "--field-selector=metadata.name=on-"+n.Name)
		if err != nil {
			return false, err.Error()
		}
		if len(ps) != 1 {
			return false, fmt.Sprintf("%d pods", len(ps))
		}
		return ps[0].Status.Phase == "Running", ps[0].Status.Phase
	})
}
