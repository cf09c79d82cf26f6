//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/e2e/lab"
)

// checkFormation asserts what scenario 1 (and 6) promise about a formed cluster of
// len(c.nodes) nodes with the given number of masters.
func checkFormation(t *testing.T, c *cluster, masters int) {
	t.Helper()
	ctx := t.Context()
	want := len(c.nodes)
	pods := netip.MustParsePrefix(podRange)

	// Every node's view: all members alive, `masters` masters, distinct pod CIDRs in range.
	var cidrs map[string]string
	for _, n := range c.nodes {
		var st agent.Status
		waitFor(t, n.Name+": knode status shows every member alive with a pod CIDR", 2*time.Minute, func() (bool, string) {
			var err error
			st, err = status(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			alive, withCIDR := 0, 0
			for _, m := range st.Members {
				if m.State == "alive" {
					alive++
				}
				if m.PodCIDR != "" {
					withCIDR++
				}
			}
			return alive == want && withCIDR == want, fmt.Sprintf("%d alive, %d with a pod CIDR of %d", alive, withCIDR, want)
		})
		nMasters := 0
		seen := map[string]string{}
		for _, m := range st.Members {
			if contains(m.Roles, "master") {
				nMasters++
			}
			p, err := netip.ParsePrefix(m.PodCIDR)
			if err != nil || !pods.Contains(p.Addr()) || p.Bits() < pods.Bits() {
				t.Errorf("%s sees %s with pod CIDR %q, not a subnet of %s", n.Name, m.Name, m.PodCIDR, podRange)
			}
			if other, dup := seen[m.PodCIDR]; dup {
				t.Errorf("%s sees pod CIDR %s on both %s and %s", n.Name, m.PodCIDR, other, m.Name)
			}
			seen[m.PodCIDR] = m.Name
		}
		if nMasters != masters {
			t.Errorf("%s sees %d masters, want %d", n.Name, nMasters, masters)
		}
		byName := map[string]string{}
		for _, m := range st.Members {
			byName[m.Name] = m.PodCIDR
		}
		if cidrs == nil {
			cidrs = byName
		} else if fmt.Sprint(cidrs) != fmt.Sprint(byName) {
			t.Errorf("nodes disagree on pod CIDRs: %s sees %v, %s sees %v", c.first().Name, cidrs, n.Name, byName)
		}
	}

	// Node objects carry the same podCIDRs.
	kn, err := kubeNodes(ctx, c.first())
	if err != nil {
		t.Fatalf("kubectl get nodes: %v", err)
	}
	if len(kn) != want {
		t.Errorf("%d Node objects, want %d", len(kn), want)
	}
	for _, n := range kn {
		if n.Spec.PodCIDR != cidrs[n.Metadata.Name] {
			t.Errorf("Node %s has spec.podCIDR %q, knode status says %q", n.Metadata.Name, n.Spec.PodCIDR, cidrs[n.Metadata.Name])
		}
	}

	// The guide's checks on the master: /healthz ok, /api lists v1.
	if out, err := kubectl(ctx, c.first(), "get", "--raw", "/healthz"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("/healthz: %q, %v", strings.TrimSpace(out), err)
	}
	if out, err := kubectl(ctx, c.first(), "get", "--raw", "/api"); err != nil || !strings.Contains(out, `"v1"`) {
		t.Errorf("/api does not list v1: %.200q, %v", out, err)
	}

	// Mirror pods of the control plane on every master; CoreDNS Running.
	masterNames := map[string]bool{}
	st, _ := status(ctx, c.first())
	for _, m := range st.Members {
		if contains(m.Roles, "master") {
			masterNames[m.Name] = true
		}
	}
	start := time.Now()
	waitFor(t, "control-plane mirror pods and CoreDNS Running in kube-system", readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "-n", "kube-system")
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for m := range masterNames {
			for _, comp := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				if !hasPod(ps, func(p kubePod) bool {
					return p.Metadata.Name == comp+"-"+m && p.Metadata.Annotations["kubernetes.io/config.mirror"] != "" && p.Status.Phase == "Running"
				}) {
					missing = append(missing, comp+"-"+m)
				}
			}
		}
		if !hasPod(ps, func(p kubePod) bool { return p.Metadata.Labels["k8s-app"] == "kube-dns" && p.Status.Phase == "Running" }) {
			missing = append(missing, "CoreDNS (k8s-app=kube-dns) Running")
		}
		return len(missing) == 0, "missing: " + strings.Join(missing, ", ")
	})
	timing(t, "control plane mirror pods and CoreDNS Running (after all Ready)", time.Since(start))
}

func hasPod(ps []kubePod, ok func(kubePod) bool) bool {
	for _, p := range ps {
		if ok(p) {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// etcdMembers lists etcd's members with the payload's etcdctl on a master, through its
// loopback (etcd's ports take other masters only) with the apiserver's etcd client
// certificate and the etcd CA.
func etcdMembers(ctx context.Context, m *lab.Node) ([]string, error) {
	out, err := etcdctl(ctx, m, "https://127.0.0.1:2379", "apiserver-etcd-client", "member", "list", "-w", "json")
	if err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w: %s", m.Name, err, lastLines(out, 3))
	}
	var list struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w", m.Name, err)
	}
	var names []string
	for _, mm := range list.Members {
		names = append(names, mm.Name)
	}
	return names, nil
}

// etcdctl runs the payload's etcdctl on n against endpoint, trusting the etcd CA when n has
// it (else the cluster CA) and presenting the client certificate /etc/kubernetes/pki/<cred>.
func etcdctl(ctx context.Context, n *lab.Node, endpoint, cred string, args ...string) (string, error) {
	ca := "/etc/kubernetes/pki/etcd/ca.crt"
	if _, err := n.Exec(ctx, "test", "-e", ca); err != nil {
		ca = "/etc/kubernetes/pki/ca.crt"
	}
	base := []string{nodeEtcdctl, "--endpoints", endpoint, "--cacert", ca,
		"--cert", "/etc/kubernetes/pki/" + cred + ".crt", "--key", "/etc/kubernetes/pki/" + cred + ".key",
		"--dial-timeout", "5s", "--command-timeout", "10s"}
	return n.Exec(ctx, append(base, args...)...)
}

// diffLines shows the lines only in a ("-") or only in b ("+"), in order; enough to read why
// two network snapshots differ.
func diffLines(a, b string) string {
	inA, inB := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		inA[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		inB[l]++
	}
	var out []string
	section := ""
	for _, l := range strings.Split(a, "\n") {
		if strings.HasPrefix(l, "== ") {
			section = l
		}
		if inB[l] == 0 {
			out = append(out, "- "+l+"   ["+section+"]")
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if strings.HasPrefix(l, "== ") {
			section = l
		}
		if inA[l] == 0 {
			out = append(out, "+ "+l+"   ["+section+"]")
		}
	}
	return strings.Join(out, "\n")
}
