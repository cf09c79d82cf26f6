//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
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

// etcdMembers lists etcd's members through its gRPC gateway on a master's address, with the
// apiserver's etcd client certificate read from that master.
func etcdMembers(ctx context.Context, m *lab.Node) ([]string, error) {
	read := func(f string) ([]byte, error) {
		out, err := m.Exec(ctx, "cat", "/etc/kubernetes/pki/"+f)
		return []byte(out), err
	}
	caPEM, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	certPEM, err := read("apiserver-etcd-client.crt")
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("apiserver-etcd-client.key")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate of %s: %w", m.Name, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+m.IP+":2379/v3/cluster/member/list", strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	var list struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %s: %w", m.Name, resp.Status, err)
	}
	var names []string
	for _, mm := range list.Members {
		names = append(names, mm.Name)
	}
	return names, nil
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
