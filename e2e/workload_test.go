//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// checkWorkload is scenario 2 on a formed cluster: one echo pod per node, then pod-to-pod
// across nodes, the Service IP, the Service name through cluster DNS, and a NodePort from
// the host.
func checkWorkload(t *testing.T, c *cluster) {
	t.Helper()
	ctx := t.Context()
	importImage(t, c.nodes, echoImageTar(t))
	manifest := lab.EchoWorkload(len(c.nodes), "Never")
	if out, err := c.first().ExecInput(ctx, []byte(manifest), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		if out2, err2 := c.first().ExecInput(ctx, []byte(manifest), nodeKubectl, "--kubeconfig", adminKubeconfig, "apply", "-f", "-"); err2 != nil {
			t.Fatalf("apply the workload: %v\n%s\n%s", err, out, out2)
		}
	}
	start := time.Now()
	var pods []kubePod
	waitFor(t, "one Running echo pod on every node", readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "-l", "app=echo")
		if err != nil {
			return false, err.Error()
		}
		on := map[string]bool{}
		pods = pods[:0]
		for _, p := range ps {
			if p.Status.Phase == "Running" && p.Status.PodIP != "" {
				on[p.Spec.NodeName] = true
				pods = append(pods, p)
			}
		}
		return len(on) == len(c.nodes), fmt.Sprintf("Running on %d of %d nodes (%d pods)", len(on), len(c.nodes), len(ps))
	})
	timing(t, "echo pods Running on every node", time.Since(start))

	svcIP, err := kubectl(ctx, c.first(), "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatalf("service echo: %v", err)
	}
	var echo []lab.EchoPod
	for _, p := range pods {
		echo = append(echo, lab.EchoPod{Name: p.Metadata.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP})
	}
	start = time.Now()
	for _, err := range lab.EchoPaths(echo, strings.TrimSpace(svcIP), func(from lab.EchoPod, target string) error {
		_, err := kubectl(ctx, c.first(), "exec", from.Name, "--", "/agnhost", "connect", "--timeout=5s", target)
		return err
	}) {
		t.Error(err)
	}
	timing(t, "pod-to-pod, Service IP and DNS checks from every node", time.Since(start))

	// NodePort from the host, through a worker's address (last node) on the lab network.
	n := c.nodes[len(c.nodes)-1]
	url := "http://" + n.IP + ":" + strconv.Itoa(lab.EchoNodePort) + "/hostname"
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
