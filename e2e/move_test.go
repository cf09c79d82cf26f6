//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// TestScenarioMove: a subnet given away on both sides of a partition. Three masters; gossip
// (port 7946) is cut between the first master and the two others, while etcd and the
// apiservers still reach each other, so each side has an allocator and a working control
// plane. A worker joins on each side (through the first master, and through the second):
// both allocators give it the same free subnet, and both workers end Ready with it, each
// with a pod. Then the cut heals: the older decision keeps the subnet and the other worker is
// moved, with no command run. The moved worker ends with the new subnet on cbr0 and in its
// Node's spec.podCIDR, Ready; no pod on it keeps an address of the old subnet; a new pod on
// it gets an address in the new subnet and is reachable from the other worker's pod, and
// the kept worker's subnet and pod are untouched.
func TestScenarioMove(t *testing.T) {
	c := initCluster(t, 5, "--masters", "3")
	ctx := t.Context()
	for i := 1; i <= 2; i++ {
		if out, err := c.join(ctx, i); err != nil {
			t.Fatalf("knode join on %s (%s): %s", c.nodes[i].Name, exitOf(err), lastLines(out, 2))
		}
	}
	c.waitReady(t, 3, time.Now(), "3 masters Ready")
	sideA, sideB := []*lab.Node{c.nodes[0], c.nodes[3]}, []*lab.Node{c.nodes[1], c.nodes[2], c.nodes[4]}
	heal := cutGossip(t, sideA, sideB)
	waitFor(t, "each side to see the other dead", 2*time.Minute, func() (bool, string) {
		a, errA := status(ctx, c.nodes[0])
		b, errB := status(ctx, c.nodes[1])
		if errA != nil || errB != nil {
			return false, fmt.Sprint(errA, errB)
		}
		ma, mb := member(a, c.nodes[1].Name), member(b, c.nodes[0].Name)
		return ma != nil && mb != nil && ma.State == "dead" && mb.State == "dead", fmt.Sprintf("%+v / %+v", ma, mb)
	})
	// One worker on each side, at once, through that side's master.
	type joined struct {
		out string
		err error
	}
	done := make(chan joined, 2)
	for _, j := range []struct{ node, via *lab.Node }{{c.nodes[3], c.nodes[0]}, {c.nodes[4], c.nodes[1]}} {
		go func() {
			out, err := knode(ctx, j.node, "join", j.via.IP+":"+gossipPort, "--token", c.token)
			done <- joined{j.node.Name + ":\n" + out, err}
		}()
	}
	for range 2 {
		j := <-done
		t.Logf("%s", indent(j.out))
		if j.err != nil {
			t.Fatalf("a join during the partition failed (%s): %s", exitOf(j.err), lastLines(j.out, 2))
		}
	}
	wa, wb := c.nodes[3], c.nodes[4]
	cidrA, cidrB := nodePodCIDR(t, c, wa), nodePodCIDR(t, c, wb)
	if cidrA != cidrB {
		t.Fatalf("the two sides gave different subnets (%s: %s, %s: %s): nothing to resolve", wa.Name, cidrA, wb.Name, cidrB)
	}
	runPodOn(t, c, wa)
	runPodOn(t, c, wb)
	// The duplicate must still be there: a move before the heal would mean the cut leaked.
	for _, n := range []*lab.Node{wa, wb} {
		if got := nodePodCIDR(t, c, n); got != cidrA {
			t.Fatalf("%s has podCIDR %s before the heal, not %s: gossip crossed the cut", n.Name, got, cidrA)
		}
	}

	start := time.Now() // the heal takes seconds itself (docker exec on five nodes)
	heal()
	timing(t, "heal (the cut's rules deleted on every node)", time.Since(start))
	var moved, kept *lab.Node
	var newCIDR string
	waitFor(t, "one of the two workers moved off "+cidrA+" in knode status, every member healthy", 3*time.Minute, func() (bool, string) {
		st, err := status(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		ma, mb := member(st, wa.Name), member(st, wb.Name)
		if ma == nil || mb == nil {
			return false, "a worker is missing"
		}
		switch {
		case ma.PodCIDR == cidrA && mb.PodCIDR != cidrA && mb.PodCIDR != "":
			kept, moved, newCIDR = wa, wb, mb.PodCIDR
		case mb.PodCIDR == cidrA && ma.PodCIDR != cidrA && ma.PodCIDR != "":
			kept, moved, newCIDR = wb, wa, ma.PodCIDR
		default:
			return false, fmt.Sprintf("%s %s, %s %s", wa.Name, ma.PodCIDR, wb.Name, mb.PodCIDR)
		}
		return st.Healthy, fmt.Sprintf("moved %s to %s; healthy %v", moved.Name, newCIDR, st.Healthy)
	})
	t.Logf("%s kept %s; %s moved to %s", kept.Name, cidrA, moved.Name, newCIDR)
	waitFor(t, "Node "+moved.Name+" Ready with podCIDR "+newCIDR, 3*time.Minute, func() (bool, string) {
		nodes, err := kubeNodes(ctx, c.first())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Metadata.Name == moved.Name {
				return n.Spec.PodCIDR == newCIDR && n.Ready(), fmt.Sprintf("podCIDR %q, Ready %v", n.Spec.PodCIDR, n.Ready())
			}
		}
		return false, "no Node (deleted for its immutable podCIDR; its kubelet registers it again)"
	})
	timing(t, "partition healed -> the moved node Ready with its new podCIDR", time.Since(start))
	if got := nodePodCIDR(t, c, kept); got != cidrA {
		t.Errorf("the kept worker %s has podCIDR %s, want %s", kept.Name, got, cidrA)
	}
	prefix := netip.MustParsePrefix(newCIDR)
	gw := netip.PrefixFrom(prefix.Addr().Next(), prefix.Bits()).String()
	if out, err := moved.Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", "cbr0"); err != nil || !strings.Contains(out, gw) {
		t.Errorf("cbr0 on %s does not hold %s: %q %v", moved.Name, gw, out, err)
	}
	// No pod on the moved node keeps an address of the old subnet.
	old := netip.MustParsePrefix(cidrA)
	waitFor(t, "no pod on "+moved.Name+" with an address in "+cidrA, 2*time.Minute, func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "-A", "--field-selector=spec.nodeName="+moved.Name)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range ps {
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil && old.Contains(ip) && p.Status.Phase == "Running" {
				return false, p.Metadata.Name + " at " + p.Status.PodIP
			}
		}
		return true, ""
	})
	// A pod on the moved node now: an address in the new subnet, answering the kept
	// worker's pod (routes on both sides follow the move).
	echo := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: echo-%[1]s, namespace: default}
spec:
  nodeName: %[1]s
  tolerations: [{operator: Exists}]
  containers:
  - {name: echo, image: %[2]s, imagePullPolicy: Never, args: ["netexec", "--http-port=8080"]}
`, moved.Name, echoImage)
	if out, err := c.first().ExecInput(ctx, []byte(echo), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply an echo pod on %s: %v\n%s", moved.Name, err, out)
	}
	var ip netip.Addr
	waitFor(t, "pod echo-"+moved.Name+" Running in "+newCIDR, 2*time.Minute, func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "--field-selector=metadata.name=echo-"+moved.Name)
		if err != nil || len(ps) != 1 {
			return false, fmt.Sprint(err, len(ps))
		}
		ip, _ = netip.ParseAddr(ps[0].Status.PodIP)
		return ps[0].Status.Phase == "Running" && prefix.Contains(ip), ps[0].Status.Phase + " at " + ps[0].Status.PodIP
	})
	waitFor(t, "on-"+kept.Name+" reaching "+ip.String()+":8080 on "+moved.Name, time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, c.first(), "exec", "on-"+kept.Name, "--", "/agnhost", "connect", "--timeout=5s", ip.String()+":8080")
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, lastLines(out, 2))
		}
		return true, ""
	})
}

// nodePodCIDR is n's Node's spec.podCIDR, once set.
func nodePodCIDR(t *testing.T, c *cluster, n *lab.Node) string {
	t.Helper()
	var cidr string
	waitFor(t, "Node "+n.Name+" with a podCIDR", 2*time.Minute, func() (bool, string) {
		out, err := kubectl(t.Context(), c.first(), "get", "node", n.Name, "-o", "jsonpath={.spec.podCIDR}")
		if err != nil {
			return false, err.Error()
		}
		cidr = strings.TrimSpace(out)
		return cidr != "", "none yet"
	})
	return cidr
}

// cutGossip drops gossip (TCP and UDP 7946) between the two sides, in each node's INPUT
// chain, and returns the function that heals the cut.
func cutGossip(t *testing.T, a, b []*lab.Node) func() {
	t.Helper()
	rules := func(op string, others []*lab.Node) string {
		var s strings.Builder
		for _, o := range others {
			for _, proto := range []string{"tcp", "udp"} {
				fmt.Fprintf(&s, "iptables %s INPUT -s %s/32 -p %s --dport %s -m comment --comment knode-e2e-cut -j DROP\n", op, o.IP, proto, gossipPort)
			}
		}
		return s.String()
	}
	apply := func(op string) error {
		for _, side := range [][2][]*lab.Node{{a, b}, {b, a}} {
			for _, n := range side[0] {
				if out, err := n.Sh(t.Context(), "set -e\n"+rules(op, side[1])); err != nil {
					return fmt.Errorf("%s: %v: %s", n.Name, err, out)
				}
			}
		}
		return nil
	}
	if err := apply("-I"); err != nil {
		t.Fatalf("cut gossip: %v", err)
	}
	healed := false
	t.Cleanup(func() {
		if !healed {
			apply("-D")
		}
	})
	return func() {
		t.Helper()
		if err := apply("-D"); err != nil {
			t.Fatalf("heal the gossip cut: %v", err)
		}
		healed = true
	}
}
