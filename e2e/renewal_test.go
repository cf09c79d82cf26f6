//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
	"knode.dev/knode/release"
)

// renewLifetime is the test lifetime of every leaf certificate in the renewal scenario: each
// is renewed 3 min 10 s after it was issued (a third of 5 min 30 s left, back-dating
// included) and the first ones expire 5 min after init. Renewals restart the kubelet and the
// control plane's containers, so they are spaced well beyond the minute those take to settle.
const renewLifetime = "5m"

// nodeCert is one row of `knode certs --json`.
type nodeCert struct {
	Path     string     `json:"path"`
	NotAfter time.Time  `json:"notAfter"`
	RenewsAt *time.Time `json:"renewsAt"`
}

// leafExpiries maps each leaf certificate of n (path) to its expiry.
func leafExpiries(ctx context.Context, n *lab.Node) (map[string]time.Time, error) {
	out, err := knode(ctx, n, "certs", "--json")
	if err != nil {
		return nil, fmt.Errorf("knode certs on %s: %w: %s", n.Name, err, out)
	}
	var certs []nodeCert
	if err := json.Unmarshal([]byte(out), &certs); err != nil {
		return nil, fmt.Errorf("knode certs --json on %s: %w", n.Name, err)
	}
	leaves := map[string]time.Time{}
	for _, c := range certs {
		if c.RenewsAt != nil {
			leaves[c.Path] = c.NotAfter
		}
	}
	return leaves, nil
}

// TestScenario11Renewal: a master and a worker whose certificates last 3 minutes. Every leaf
// (the worker's signed by the master through letters) is renewed before it expires; once the
// first certificates have expired, both nodes are still Ready, a new pod runs on the worker,
// and `kubectl logs` reaches the worker's kubelet (its renewed serving certificate, checked by
// the apiserver against the cluster CA).
func TestScenario11Renewal(t *testing.T) {
	start := time.Now()
	c := initCluster(t, 2, "--cert-lifetime", renewLifetime)
	c.joinAll(t, "--cert-lifetime", renewLifetime)
	ctx := t.Context()
	first := map[string]map[string]time.Time{}
	var expiry time.Time // when the last of the first certificates expires
	for _, n := range c.nodes {
		leaves, err := leafExpiries(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaves) == 0 {
			t.Fatalf("%s lists no leaf certificate", n.Name)
		}
		for p, at := range leaves {
			if life := time.Until(at); life > 6*time.Minute {
				t.Fatalf("%s: %s expires in %s, not in the %s test lifetime", n.Name, p, life.Round(time.Second), renewLifetime)
			}
			if at.After(expiry) {
				expiry = at
			}
		}
		first[n.Name] = leaves
	}
	for _, n := range c.nodes {
		waitFor(t, "every leaf certificate of "+n.Name+" renewed", 6*time.Minute, func() (bool, string) {
			now, err := leafExpiries(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			var old []string
			for p, at := range first[n.Name] {
				if !now[p].After(at) {
					old = append(old, p)
				}
			}
			return len(old) == 0, "not yet: " + strings.Join(old, ", ")
		})
	}
	timing(t, "init to every leaf renewed", time.Since(start))
	if wait := time.Until(expiry.Add(5 * time.Second)); wait > 0 {
		t.Logf("waiting %s, until every first certificate has expired", wait.Round(time.Second))
		time.Sleep(wait)
	}
	c.waitReady(t, len(c.nodes), time.Now(), "both nodes Ready with the first certificates expired")
	worker := c.nodes[1]
	overrides := fmt.Sprintf(`{"spec":{"nodeName":%q}}`, worker.Name)
	if out, err := kubectl(ctx, c.first(), "run", "renewed", "--image="+release.PauseImage, "--image-pull-policy=Never", "--overrides="+overrides); err != nil {
		t.Fatalf("kubectl run after renewal: %v: %s", err, out)
	}
	waitFor(t, "a new pod running on "+worker.Name, 2*time.Minute, func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "--field-selector=metadata.name=renewed")
		if err != nil {
			return false, err.Error()
		}
		return hasPod(ps, func(p kubePod) bool { return p.Status.Phase == "Running" }), fmt.Sprintf("%d pods", len(ps))
	})
	waitFor(t, "kubectl logs through "+worker.Name+"'s kubelet", time.Minute, func() (bool, string) {
		out, err := kubectl(ctx, c.first(), "logs", "renewed")
		return err == nil, fmt.Sprintf("%v: %.200s", err, out)
	})
	for _, n := range c.nodes {
		if out, err := knode(ctx, n, "certs"); err == nil {
			t.Logf("%s: knode certs\n%s", n.Name, indent(out))
		}
	}
}
