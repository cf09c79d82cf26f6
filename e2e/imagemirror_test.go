//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
	"knode.dev/knode/e2e/lab"
	"knode.dev/knode/release/oci"
)

// p2pImage is imported on one node only; its registry host cannot exist (.invalid), so
// only the nodes' mirrors can serve it.
const (
	p2pImage     = "registry.knode.invalid/e2e/p2p:v1"
	p2pImage2    = "registry.knode.invalid/e2e/p2p:v2"
	p2pDataBytes = 50 << 20
)

// p2pImageTar builds (once, in e2e/_work/p2p) an OCI image of the static sleeper binary and
// a 50 MiB file of incompressible bytes: the seed makes each image distinct and reproducible.
func p2pImageTar(t *testing.T, ref string, seed uint64) string {
	t.Helper()
	work, _ := filepath.Abs("_work/p2p")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "sleeper")
	if _, err := os.Stat(bin); err != nil {
		build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/sleeper")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build sleeper: %v\n%s", err, out)
		}
	}
	data := fmt.Sprintf("data-%d.bin", seed)
	if _, err := os.Stat(filepath.Join(work, data)); err != nil {
		b := make([]byte, p2pDataBytes)
		r := rand.NewChaCha8([32]byte{byte(seed)})
		r.Read(b)
		if err := os.WriteFile(filepath.Join(work, data), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tar := filepath.Join(work, fmt.Sprintf("p2p-%d.oci.tar", seed))
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := oci.Image{Ref: ref, Entrypoint: []string{"/sleeper"}, Files: []oci.File{
		{Path: "sleeper", Mode: 0o755, Source: "sleeper"}, {Path: "data.bin", Mode: 0o644, Source: data}}}
	if _, err := oci.Write(f, img, os.DirFS(work)); err != nil {
		t.Fatalf("p2p image: %v", err)
	}
	return tar
}

const p2pDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: p2p, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: p2p}}
  template:
    metadata: {labels: {app: p2p}}
    spec:
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: p2p}}}
      containers:
      - {name: p2p, image: ` + p2pImage + `, imagePullPolicy: Always}
`

const p2pPod = `apiVersion: v1
kind: Pod
metadata: {name: p2p-failover, namespace: default}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - {name: p2p, image: ` + p2pImage2 + `, imagePullPolicy: Always}
`

// imagesReport is `knode images list --json` on n.
func imagesReport(ctx context.Context, n *lab.Node) (agent.ImagesReport, error) {
	var rep agent.ImagesReport
	out, err := knode(ctx, n, "images", "list", "--json")
	if err != nil {
		return rep, fmt.Errorf("knode images list on %s: %w: %s", n.Name, err, out)
	}
	return rep, json.Unmarshal([]byte(out), &rep)
}

// holders lists the nodes that hold ref at its latest digest, as n sees them.
func holders(ctx context.Context, n *lab.Node, ref string) ([]string, error) {
	rep, err := imagesReport(ctx, n)
	if err != nil {
		return nil, err
	}
	for _, im := range rep.Images {
		if im.Ref == ref {
			return im.Nodes, nil
		}
	}
	return nil, nil
}

// agentRSS is the knode agent's resident memory on n, in KiB (VmRSS from /proc).
func agentRSS(ctx context.Context, n *lab.Node) (int, error) {
	out, err := n.Sh(ctx, `grep VmRSS /proc/$(systemctl show -p MainPID --value knode)/status`)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return 0, fmt.Errorf("VmRSS: %q", out)
	}
	return strconv.Atoi(f[1])
}

var pulledRE = regexp.MustCompile(`Successfully pulled image "[^"]+" in ([0-9.]+m?s)`)

// pullTimes are the kubelets' own pull durations of image, by node (events "Pulled").
func pullTimes(ctx context.Context, n *lab.Node, image string) (map[string]time.Duration, error) {
	out, err := kubectl(ctx, n, "get", "events", "-o", "json", "--field-selector", "reason=Pulled")
	if err != nil {
		return nil, err
	}
	var evs struct {
		Items []struct {
			Message string `json:"message"`
			Source  struct {
				Host string `json:"host"`
			} `json:"source"`
			ReportingInstance string `json:"reportingInstance"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		return nil, err
	}
	res := map[string]time.Duration{}
	for _, e := range evs.Items {
		m := pulledRE.FindStringSubmatch(e.Message)
		if m == nil || !strings.Contains(e.Message, image) {
			continue
		}
		d, _ := time.ParseDuration(m[1])
		host := e.Source.Host
		if host == "" {
			host = e.ReportingInstance
		}
		res[host] = d
	}
	return res, nil
}

// TestScenario12Images: an image imported on one node of three (knode images import) is
// announced to every node; a Deployment of 3 replicas with imagePullPolicy: Always spread
// over all nodes becomes Ready although its registry cannot exist: each node's containerd
// asks its node-local mirror, which fetches from the nodes that hold it. Then a second
// image held by two nodes is pulled by the third while the knode agent (and so the peer
// endpoint) of the node it fetches from is killed: the pull falls over to the other holder.
// Measured: import time, pull seconds, bytes from the importing node vs. other peers, the
// agent's memory at rest with and without images.
func TestScenario12Images(t *testing.T) {
	c := formCluster(t, 3)
	ctx := t.Context()
	tar := p2pImageTar(t, p2pImage, 1)
	rssBefore := map[string]int{}
	for _, n := range c.nodes {
		rss, err := agentRSS(ctx, n)
		if err != nil {
			t.Fatalf("agent memory on %s: %v", n.Name, err)
		}
		rssBefore[n.Name] = rss
	}

	// 1. Import on the first node only.
	if err := c.first().CopyIn(ctx, tar, "/var/tmp/p2p.oci.tar"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := knode(ctx, c.first(), "images", "import", "/var/tmp/p2p.oci.tar"); err != nil || !strings.Contains(out, "imported "+p2pImage) {
		t.Fatalf("knode images import: %v\n%s", err, out)
	}
	timing(t, "knode images import of a 52 MB image", time.Since(start))
	waitFor(t, "every node sees the image held by "+c.first().Name, 30*time.Second, func() (bool, string) {
		for _, n := range c.nodes {
			hs, err := holders(ctx, n, p2pImage)
			if err != nil || len(hs) != 1 || hs[0] != c.first().Name {
				return false, fmt.Sprintf("%s sees holders %v (%v)", n.Name, hs, err)
			}
		}
		return true, ""
	})
	timing(t, "import until every node sees the announcement", time.Since(start))
	// A corrupt archive is refused with a clear error and imports nothing.
	if out, err := c.first().Sh(ctx, "head -c 1000000 /var/tmp/p2p.oci.tar > /var/tmp/bad.tar && knode images import /var/tmp/bad.tar"); err == nil ||
		!strings.Contains(out, "not a valid image archive") || !strings.Contains(out, "nothing of it was imported") {
		t.Errorf("a corrupt archive: %v\n%s", err, out)
	}

	// 2. The Deployment, pulled everywhere with imagePullPolicy: Always.
	start = time.Now()
	if out, err := c.first().ExecInput(ctx, []byte(fmt.Sprintf(p2pDeployment, len(c.nodes))), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "a Running p2p pod on every node", readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "-l", "app=p2p")
		if err != nil {
			return false, err.Error()
		}
		on := map[string]bool{}
		for _, p := range ps {
			if p.Status.Phase == "Running" {
				on[p.Spec.NodeName] = true
			}
		}
		return len(on) == len(c.nodes), fmt.Sprintf("Running on %d of %d nodes", len(on), len(c.nodes))
	})
	timing(t, "Deployment (3 replicas, imagePullPolicy: Always) applied until Running on every node", time.Since(start))
	if pulls, err := pullTimes(ctx, c.first(), p2pImage); err == nil {
		for node, d := range pulls {
			timing(t, "kubelet pull of the image on "+node, d)
		}
	}
	var fromImporter, fromOthers int64
	for _, n := range c.nodes[1:] {
		rep, err := imagesReport(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for peer, b := range rep.FetchedFromPeers {
			if peer == c.first().Name {
				fromImporter += b
			} else {
				fromOthers += b
			}
		}
		t.Logf("%s fetched from peers: %v", n.Name, rep.FetchedFromPeers)
	}
	t.Logf("BYTES from the importing node: %d, from other peers: %d", fromImporter, fromOthers)
	if fromImporter+fromOthers < 2*p2pDataBytes {
		t.Errorf("the two other nodes fetched %d bytes in all, want at least %d", fromImporter+fromOthers, 2*p2pDataBytes)
	}
	waitFor(t, "every node holds the image", 30*time.Second, func() (bool, string) {
		hs, err := holders(ctx, c.first(), p2pImage)
		return len(hs) == len(c.nodes), fmt.Sprintf("holders %v (%v)", hs, err)
	})
	time.Sleep(10 * time.Second) // at rest
	for _, n := range c.nodes {
		if rss, err := agentRSS(ctx, n); err == nil {
			t.Logf("MEMORY knode agent on %s: %d KiB before the image, %d KiB at rest after it", n.Name, rssBefore[n.Name], rss)
		}
	}

	reimport(t, c)

	// 3. A second image held by the first two nodes, pulled by the third; the agent of the
	// node it fetches from is killed mid-transfer.
	tar2 := p2pImageTar(t, p2pImage2, 2)
	for _, n := range c.nodes[:2] {
		if err := n.CopyIn(ctx, tar2, "/var/tmp/p2p2.oci.tar"); err != nil {
			t.Fatal(err)
		}
		if out, err := knode(ctx, n, "images", "import", "/var/tmp/p2p2.oci.tar"); err != nil {
			t.Fatalf("import on %s: %v\n%s", n.Name, err, out)
		}
	}
	waitFor(t, "the third node sees two holders of the second image", 30*time.Second, func() (bool, string) {
		hs, err := holders(ctx, c.nodes[2], p2pImage2)
		return len(hs) == 2, fmt.Sprintf("holders %v (%v)", hs, err)
	})
	// Slow the holders' sending down so that the transfer can be caught mid-way (tc tbf;
	// without it, the kill may come too late and the fall-over is not exercised).
	throttled := true
	for _, n := range c.nodes[:2] {
		if out, err := n.Sh(ctx, "tc qdisc add dev eth0 root tbf rate 80mbit burst 64kb latency 200ms"); err != nil {
			t.Logf("no throttle on %s (%v: %s)", n.Name, err, out)
			throttled = false
		}
	}
	before, _ := imagesReport(ctx, c.nodes[2])
	if out, err := c.first().ExecInput(ctx, []byte(fmt.Sprintf(p2pPod, c.nodes[2].Name)), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	start = time.Now()
	killed := ""
	deadline := time.Now().Add(60 * time.Second)
	for killed == "" && time.Now().Before(deadline) {
		rep, err := imagesReport(ctx, c.nodes[2])
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.nodes[:2] {
			if rep.FetchedFromPeers[n.Name]-before.FetchedFromPeers[n.Name] > 4<<20 {
				if out, err := n.Exec(ctx, "systemctl", "kill", "--signal=SIGKILL", "knode.service"); err != nil {
					t.Fatalf("kill the agent on %s: %v\n%s", n.Name, err, out)
				}
				killed = n.Name
				t.Logf("killed the knode agent on %s after %d bytes of the transfer", n.Name, rep.FetchedFromPeers[n.Name]-before.FetchedFromPeers[n.Name])
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if killed == "" {
		t.Fatal("the third node fetched nothing from the holders within 60 s")
	}
	waitFor(t, "the failover pod Running on "+c.nodes[2].Name, readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "--field-selector", "metadata.name=p2p-failover")
		if err != nil || len(ps) != 1 {
			return false, fmt.Sprint(err)
		}
		return ps[0].Status.Phase == "Running", ps[0].Status.Phase
	})
	timing(t, "pull of the second image with a holder killed mid-transfer, until Running", time.Since(start))
	after, err := imagesReport(ctx, c.nodes[2])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, n := range c.nodes[:2] {
		got[n.Name] = after.FetchedFromPeers[n.Name] - before.FetchedFromPeers[n.Name]
	}
	t.Logf("BYTES the third node fetched the second image from %v (killed: %s, throttled: %v)", got, killed, throttled)
	other := c.nodes[0].Name
	if other == killed {
		other = c.nodes[1].Name
	}
	// The killed holder was cut before the 50 MiB layer was through; the other holder sent
	// the rest of it (from the byte where it stopped) and the small blobs.
	if got[killed] >= p2pDataBytes || got[killed]+got[other] < p2pDataBytes || got[other] == 0 {
		t.Errorf("fetched %v: want the killed holder %s cut mid-layer and %s sending the rest", got, killed, other)
	}
	if out, err := c.nodes[2].Sh(ctx, "journalctl -u knode --no-pager | grep -E 'resumed at another peer|peer failed mid-transfer'"); err == nil {
		t.Logf("the third node's agent:\n%s", out)
	}
	for _, n := range c.nodes[:2] {
		n.Sh(ctx, "tc qdisc del dev eth0 root")
	}

	// 4. The second node removes its import of the second image: it stops holding it (its
	// containerd's collector removed the blobs), the others still do.
	rm := c.nodes[1]
	waitFor(t, "the agent on "+rm.Name+" answers", 60*time.Second, func() (bool, string) {
		_, err := imagesReport(ctx, rm)
		return err == nil, fmt.Sprint(err)
	})
	if out, err := knode(ctx, rm, "images", "rm", p2pImage2); err != nil || !strings.Contains(out, "removed "+p2pImage2) {
		t.Fatalf("images rm on %s: %v\n%s", rm.Name, err, out)
	}
	waitFor(t, c.nodes[2].Name+" no longer counts "+rm.Name+" as a holder", 30*time.Second, func() (bool, string) {
		hs, err := holders(ctx, c.nodes[2], p2pImage2)
		return err == nil && !slices.Contains(hs, rm.Name) && len(hs) > 0, fmt.Sprintf("holders %v (%v)", hs, err)
	})
}

var importedRE = regexp.MustCompile(`imported (\S+) (sha256:[0-9a-f]{64})`)

const p2pReimportPod = `apiVersion: v1
kind: Pod
metadata: {name: p2p-reimport, namespace: default}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - {name: p2p, image: ` + p2pImage + `, imagePullPolicy: Always}
`

// reimport: the first node (a master) imports the image's name again with new content; every
// node then resolves the name to the new digest, and a new pod with imagePullPolicy: Always on
// another node runs it. A node that did not import the name cannot remove it.
func reimport(t *testing.T, c *cluster) {
	ctx := t.Context()
	tar := p2pImageTar(t, p2pImage, 3)
	if err := c.first().CopyIn(ctx, tar, "/var/tmp/p2p3.oci.tar"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := knode(ctx, c.first(), "images", "import", "/var/tmp/p2p3.oci.tar")
	m := importedRE.FindStringSubmatch(out)
	if err != nil || m == nil || m[1] != p2pImage {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	newDigest := m[2]
	other := c.nodes[1]
	waitFor(t, other.Name+" resolves the name to the new import", 30*time.Second, func() (bool, string) {
		rep, err := imagesReport(ctx, other)
		if err != nil {
			return false, err.Error()
		}
		for _, im := range rep.Images {
			if im.Ref == p2pImage {
				return im.Digest == newDigest, "resolves to " + im.Digest
			}
		}
		return false, "no such image"
	})
	timing(t, "re-import until another node resolves the name to the new digest", time.Since(start))
	if out, err := c.first().ExecInput(ctx, []byte(fmt.Sprintf(p2pReimportPod, other.Name)), "knode", "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "the re-import pod Running on "+other.Name, readyTimeout(), func() (bool, string) {
		ps, err := kubePods(ctx, c.first(), "--field-selector", "metadata.name=p2p-reimport")
		if err != nil || len(ps) != 1 {
			return false, fmt.Sprint(err)
		}
		return ps[0].Status.Phase == "Running", ps[0].Status.Phase
	})
	timing(t, "re-import until a new pod with imagePullPolicy: Always runs it on another node", time.Since(start))
	ps, err := kubePods(ctx, c.first(), "--field-selector", "metadata.name=p2p-reimport")
	if err != nil || len(ps) != 1 || len(ps[0].Status.ContainerStatuses) != 1 ||
		!strings.HasSuffix(ps[0].Status.ContainerStatuses[0].ImageID, newDigest) {
		t.Fatalf("the pod on %s runs %+v (%v), want the new digest %s", other.Name, ps, err, newDigest)
	}
	if out, err := knode(ctx, other, "images", "rm", p2pImage); err == nil || !strings.Contains(out, "not imported on this node") {
		t.Errorf("images rm of a name %s did not import: %v\n%s", other.Name, err, out)
	}
}
