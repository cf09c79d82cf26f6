//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
	"knode.dev/knode/release/oci"
)

// echoImage is the workload image: agnhost built from source (k8s.io/kubernetes/test/images),
// whose `netexec` serves its hostname; no registry is involved.
const echoImage = "registry.k8s.io/e2e-test-images/agnhost:knode-e2e"

var agnhostOnce struct {
	sync.Once
	tar string
	err error
}

// echoImageTar builds agnhost (once per run, cached in e2e/_work) and wraps it in an OCI
// image-layout tarball that `ctr images import` takes. KNODE_E2E_AGNHOST names a prebuilt
// static agnhost instead.
func echoImageTar(t *testing.T) string {
	t.Helper()
	agnhostOnce.Do(func() {
		start := time.Now()
		work, _ := filepath.Abs("_work/agnhost")
		if err := os.MkdirAll(work, 0o755); err != nil {
			agnhostOnce.err = err
			return
		}
		bin := os.Getenv("KNODE_E2E_AGNHOST")
		if bin == "" {
			bin = filepath.Join(work, "agnhost")
			if err := buildAgnhost(work, bin); err != nil {
				agnhostOnce.err = err
				return
			}
		}
		tar := filepath.Join(work, "agnhost.oci.tar")
		f, err := os.Create(tar)
		if err != nil {
			agnhostOnce.err = err
			return
		}
		defer f.Close()
		img := oci.Image{Ref: echoImage, Entrypoint: []string{"/agnhost"},
			Files: []oci.File{{Path: "agnhost", Mode: 0o755, Source: filepath.Base(bin)}}}
		if _, err := oci.Write(f, img, os.DirFS(filepath.Dir(bin))); err != nil {
			agnhostOnce.err = fmt.Errorf("agnhost image: %w", err)
			return
		}
		agnhostOnce.tar = tar
		timing(t, "agnhost built and packed as an OCI image", time.Since(start))
	})
	if agnhostOnce.err != nil {
		t.Fatalf("echo server image: %v", agnhostOnce.err)
	}
	return agnhostOnce.tar
}

// buildAgnhost builds k8s.io/kubernetes/test/images/agnhost with the Kubernetes version the
// payload pins: in a scratch copy of release/build/kube's go.mod and go.sum (agnhost needs a
// few modules the payload does not, and the release module must stay untouched).
func buildAgnhost(work, out string) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	mod := filepath.Join(work, "mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", "release", "build", "kube", f))
		if err != nil {
			return fmt.Errorf("agnhost: the Kubernetes helper module: %w", err)
		}
		if err := os.WriteFile(filepath.Join(mod, f), b, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command("go", "build", "-mod=mod", "-trimpath", "-ldflags=-s -w", "-o", out, "k8s.io/kubernetes/test/images/agnhost")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build agnhost: %w\n%s", err, b)
	}
	return nil
}

// importImage copies an OCI tarball into every node and imports it into containerd's k8s.io
// namespace with the payload's ctr.
func importImage(t *testing.T, nodes []*lab.Node, tar string) {
	t.Helper()
	for _, n := range nodes {
		if err := n.CopyIn(t.Context(), tar, "/var/tmp/image.oci.tar"); err != nil {
			t.Fatal(err)
		}
		if out, err := n.Exec(t.Context(), nodeCtr, "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "import", "/var/tmp/image.oci.tar"); err != nil {
			t.Fatalf("import %s on %s: %v\n%s", echoImage, n.Name, err, out)
		}
	}
}

const workloadYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      tolerations: [{operator: Exists}]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: echo
        image: ` + echoImage + `
        imagePullPolicy: Never
        args: ["netexec", "--http-port=8080"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-nodeport, namespace: default}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
`

// checkWorkload is scenario 2 on a formed cluster: one echo pod per node, then pod-to-pod
// across nodes, the Service IP, the Service name through cluster DNS, and a NodePort from
// the host.
func checkWorkload(t *testing.T, c *cluster) {
	t.Helper()
	ctx := t.Context()
	importImage(t, c.nodes, echoImageTar(t))
	manifest := fmt.Sprintf(workloadYAML, len(c.nodes))
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
	connect := func(from kubePod, target string) error {
		_, err := kubectl(ctx, c.first(), "exec", from.Metadata.Name, "--", "/agnhost", "connect", "--timeout=5s", target)
		return err
	}
	start = time.Now()
	for _, a := range pods {
		for _, b := range pods {
			if a.Spec.NodeName == b.Spec.NodeName {
				continue
			}
			if err := connect(a, b.Status.PodIP+":8080"); err != nil {
				t.Errorf("pod on %s cannot reach pod %s on %s: %v", a.Spec.NodeName, b.Status.PodIP, b.Spec.NodeName, err)
			}
		}
		if err := connect(a, strings.TrimSpace(svcIP)+":80"); err != nil {
			t.Errorf("pod on %s cannot reach Service IP %s: %v", a.Spec.NodeName, svcIP, err)
		}
		if err := connect(a, "echo.default.svc.cluster.local:80"); err != nil {
			t.Errorf("pod on %s cannot reach the Service by name (cluster DNS): %v", a.Spec.NodeName, err)
		}
	}
	timing(t, "pod-to-pod, Service IP and DNS checks from every node", time.Since(start))

	// NodePort from the host, through a worker's address (last node) on the lab network.
	n := c.nodes[len(c.nodes)-1]
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
