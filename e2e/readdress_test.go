//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// TestScenarioAddressChange: 3 masters + 1 worker with the echo workload. The worker's
// address changes (inside the node: a new address on eth0, the old one deleted, as a new
// DHCP lease would), then a master's (seat 1): no knode command is run. Each time the
// cluster is healthy again with the node at its new address (knode status, its Node's
// InternalIP, Ready), its kubelet serves a certificate for the new address (kubectl exec
// into its pod goes through it), pods reach each other across nodes and the NodePort
// answers at the new address; for the master, its etcd member's peer URL is the new one
// and etcd has three started members.
func TestScenarioAddressChange(t *testing.T) {
	c := formCluster(t, 4, "--masters", "3")
	ctx := t.Context()
	st, err := status(ctx, c.first())
	if err != nil {
		t.Fatal(err)
	}
	worker, master := c.nodes[3], c.nodes[1]
	if m := member(st, worker.Name); m == nil || !contains(m.Roles, "worker") {
		t.Fatalf("want %s a worker: %+v", worker.Name, st.Members)
	}
	if m := member(st, master.Name); m == nil || !contains(m.Roles, "master") {
		t.Fatalf("want %s a master: %+v", master.Name, st.Members)
	}
	checkWorkload(t, c)
	base := strings.TrimSuffix(theLab.Subnet, ".0/24")

	for _, n := range []*lab.Node{worker, master} {
		newIP := fmt.Sprintf("%s.%d", base, 60+indexOf(c.nodes, n))
		start := changeAddress(t, n, newIP)
		waitFor(t, n.Name+" at "+newIP+" in knode status on "+c.first().Name+", every member healthy", 4*time.Minute, func() (bool, string) {
			st, err := status(ctx, c.first())
			if err != nil {
				return false, err.Error()
			}
			m := member(st, n.Name)
			if m == nil {
				return false, "not a member"
			}
			return strings.HasPrefix(m.Address, newIP+":") && st.Healthy, fmt.Sprintf("%s healthy=%v %v; cluster healthy=%v", m.Address, m.Healthy, m.Problems, st.Healthy)
		})
		waitFor(t, "Node "+n.Name+" Ready at InternalIP "+newIP, 3*time.Minute, func() (bool, string) {
			nodes, err := kubeNodes(ctx, c.first())
			if err != nil {
				return false, err.Error()
			}
			for _, kn := range nodes {
				if kn.Metadata.Name != n.Name {
					continue
				}
				ip := ""
				for _, a := range kn.Status.Addresses {
					if a.Type == "InternalIP" {
						ip = a.Address
					}
				}
				return ip == newIP && kn.Ready(), fmt.Sprintf("InternalIP %s, Ready %v", ip, kn.Ready())
			}
			return false, "no Node"
		})
		timing(t, n.Name+"'s address changed -> healthy at the new one, Node Ready", time.Since(start))
		n.IP = newIP
		checkAfterMove(t, c, n)
	}

	// The master's etcd member moved: its peer URL names the new address, and three
	// members are started (named) again.
	waitFor(t, "etcd member "+master.Name+" at https://"+master.IP+":2380, 3 started members", 2*time.Minute, func() (bool, string) {
		out, err := etcdctl(ctx, c.first(), "https://127.0.0.1:2379", "apiserver-etcd-client", "member", "list", "-w", "json")
		if err != nil {
			return false, err.Error()
		}
		var list struct {
			Members []struct {
				Name     string   `json:"name"`
				PeerURLs []string `json:"peerURLs"`
			} `json:"members"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err.Error()
		}
		started, moved := 0, false
		for _, m := range list.Members {
			if m.Name != "" {
				started++
			}
			moved = moved || (m.Name == master.Name && len(m.PeerURLs) == 1 && m.PeerURLs[0] == "https://"+master.IP+":2380")
		}
		return moved && started == 3 && len(list.Members) == 3, fmt.Sprintf("%+v", list.Members)
	})
	if out, err := master.Sh(ctx, "grep -c -- --advertise-address="+master.IP+" /etc/kubernetes/manifests/kube-apiserver.yaml"); err != nil || strings.TrimSpace(out) == "0" {
		t.Errorf("kube-apiserver.yaml on %s does not name %s: %q %v", master.Name, master.IP, out, err)
	}
	// knode certs on the master: its seat and, next to each due time, its turn.
	out, err := knode(ctx, master, "certs")
	if err != nil || !regexp.MustCompile(`master seat [0-4] of 3`).MatchString(out) || !strings.Contains(out, "TURN") {
		t.Errorf("knode certs on %s: %v\n%s", master.Name, err, out)
	}
	t.Logf("%s: knode certs\n%s", master.Name, indent(out))
}

func indexOf(ns []*lab.Node, n *lab.Node) int {
	for i, x := range ns {
		if x == n {
			return i
		}
	}
	return -1
}

// changeAddress gives n the address ip on eth0 in place of its own (the new one added
// first and promoted when the old one goes, as a lease change does) and returns when.
func changeAddress(t *testing.T, n *lab.Node, ip string) time.Time {
	t.Helper()
	script := fmt.Sprintf("set -e; sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1; ip addr add %s/24 dev eth0; ip addr del %s/24 dev eth0; ip -4 addr show dev eth0", ip, n.IP)
	start := time.Now()
	out, err := n.Sh(t.Context(), script)
	if err != nil {
		t.Fatalf("change %s's address from %s to %s: %v\n%s", n.Name, n.IP, ip, err, out)
	}
	t.Logf("%s: address %s -> %s\n%s", n.Name, n.IP, ip, indent(out))
	return start
}

// checkAfterMove checks that n, at its new address n.IP, serves: kubectl exec into its echo
// pod (the apiserver reaches its kubelet, whose serving certificate must name n.IP), pod to
// pod both ways with another node, and the NodePort at n.IP from the host.
func checkAfterMove(t *testing.T, c *cluster, n *lab.Node) {
	t.Helper()
	ctx := t.Context()
	var mine, other kubePod
	waitFor(t, "a Running echo pod on "+n.Name+" and on another node", 2*time.Minute, func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "-l", "app=echo")
		if err != nil {
			return false, err.Error()
		}
		mine, other = kubePod{}, kubePod{}
		for _, p := range ps {
			if p.Status.Phase != "Running" || p.Status.PodIP == "" {
				continue
			}
			if p.Spec.NodeName == n.Name {
				mine = p
			} else {
				other = p
			}
		}
		return mine.Metadata.Name != "" && other.Metadata.Name != "", fmt.Sprintf("%d pods", len(ps))
	})
	connect := func(from, to kubePod) error {
		var last error
		waitFor(t, from.Spec.NodeName+"'s pod reaching "+to.Spec.NodeName+"'s "+to.Status.PodIP, time.Minute, func() (bool, string) {
			out, err := kubectl(ctx, c.first(), "exec", from.Metadata.Name, "--", "/agnhost", "connect", "--timeout=5s", to.Status.PodIP+":8080")
			if last = err; err != nil {
				return false, fmt.Sprintf("%v: %s", err, lastLines(out, 2))
			}
			return true, ""
		})
		return last
	}
	if err := connect(mine, other); err != nil {
		t.Errorf("from %s: %v", n.Name, err)
	}
	if err := connect(other, mine); err != nil {
		t.Errorf("to %s: %v", n.Name, err)
	}
	url := "http://" + n.IP + ":30080/hostname"
	waitFor(t, "NodePort "+url+" from the host", time.Minute, func() (bool, string) {
		cl := &http.Client{Timeout: 3 * time.Second}
		resp, err := cl.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.HasPrefix(string(b), "echo-"), fmt.Sprintf("%s %q", resp.Status, b)
	})
}
