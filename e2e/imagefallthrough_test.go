//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/release/oci"
)

// liveImageTar builds (once, in e2e/_work/p2p) a small OCI image of the static sleeper binary
// named ref: what the lab registry serves and no node holds.
func liveImageTar(t *testing.T, ref string) (tar, manifest string) {
	t.Helper()
	p2pImageTar(t, p2pImage, 1) // builds the sleeper
	work, _ := filepath.Abs("_work/p2p")
	if err := os.WriteFile(filepath.Join(work, "live.txt"), []byte("served by the lab registry\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tar = filepath.Join(work, "live.oci.tar")
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := oci.Image{Ref: ref, Entrypoint: []string{"/sleeper"}, Files: []oci.File{
		{Path: "sleeper", Mode: 0o755, Source: "sleeper"}, {Path: "live.txt", Mode: 0o644, Source: "live.txt"}}}
	if manifest, err = oci.Write(f, img, os.DirFS(work)); err != nil {
		t.Fatal(err)
	}
	return tar, manifest
}

var readyRE = regexp.MustCompile(`(?m)^ready$`)

const registryPod = `apiVersion: v1
kind: Pod
metadata: {name: registry, namespace: default}
spec:
  nodeName: %[1]s
  hostNetwork: true
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 1
  containers:
  - name: registry
    image: ` + registryImage + `
    imagePullPolicy: Never
    args: ["-addr", "%[2]s:5000", "/seed/live.oci.tar"]
    volumeMounts: [{name: seed, mountPath: /seed, readOnly: true}]
  volumes: [{name: seed, hostPath: {path: /var/tmp/seed, type: Directory}}]
`

const livePod = `apiVersion: v1
kind: Pod
metadata: {name: %[1]s, namespace: default}
spec:
  nodeName: %[2]s
  terminationGracePeriodSeconds: 1
  containers:
  - {name: live, image: "%[3]s", imagePullPolicy: Always}
`

// registryHosts is what an operator writes to reach a plain-HTTP registry by address: its own
// hosts.toml, which replaces knode's _default for that host, so it lists the mirror first too.
const registryHosts = `server = "http://%[1]s"
[host."http://127.0.0.1:6447"]
  capabilities = ["pull", "resolve"]
`

// TestScenarioImagesFallThrough: a real registry (upstream distribution's, built from Go module
// sources) runs in the lab at an address:port, serving an image no node holds. A pod on one
// node pulls it by tag: the node's mirror misses (404) and containerd falls through to the
// registry. Then the registry is stopped and a pod on a third node pulls the same image by
// digest: its mirror fetches it from the first node's containerd content store.
func TestScenarioImagesFallThrough(t *testing.T) {
	c := formCluster(t, 3)
	ctx := t.Context()
	host, puller, late := c.nodes[0], c.nodes[1], c.nodes[2]
	reg := host.IP + ":5000"
	liveTag := reg + "/e2e/live:v1"
	tar, manifest := liveImageTar(t, "registry.knode.invalid/e2e/live:v1")
	importImage(t, c.nodes[:1], imageTar(t, registryImg))
	if out, err := host.Sh(ctx, "mkdir -p /var/tmp/seed"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := host.CopyIn(ctx, tar, "/var/tmp/seed/live.oci.tar"); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		dir := "/etc/containerd/certs.d/" + reg
		if out, err := n.Sh(ctx, "mkdir -p "+dir+" && cat > "+dir+"/hosts.toml <<'EOF'\n"+fmt.Sprintf(registryHosts, reg)+"EOF"); err != nil {
			t.Fatalf("hosts.toml on %s: %v\n%s", n.Name, err, out)
		}
	}
	apply := func(doc string) {
		t.Helper()
		if out, err := host.ExecInput(ctx, []byte(doc), "knode", "kubectl", "apply", "-f", "-"); err != nil {
			t.Fatalf("apply: %v\n%s", err, out)
		}
	}
	running := func(name string) string {
		t.Helper()
		var imageID string
		waitFor(t, name+" Running", readyTimeout(), func() (bool, string) {
			ps, err := kubePods(ctx, host, "--field-selector", "metadata.name="+name)
			if err != nil || len(ps) != 1 {
				return false, fmt.Sprint(err)
			}
			if len(ps[0].Status.ContainerStatuses) == 1 {
				imageID = ps[0].Status.ContainerStatuses[0].ImageID
			}
			return ps[0].Status.Phase == "Running", ps[0].Status.Phase
		})
		return imageID
	}

	apply(fmt.Sprintf(registryPod, host.Name, host.IP))
	running("registry")
	waitFor(t, "the registry holds the image", 60*time.Second, func() (bool, string) {
		out, err := kubectl(ctx, host, "logs", "registry")
		return err == nil && readyRE.MatchString(out), "not ready yet"
	})

	// 1. By tag, through the mirror's miss, from the registry.
	before, err := imagesReport(ctx, puller)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apply(fmt.Sprintf(livePod, "live-tag", puller.Name, liveTag))
	if id := running("live-tag"); !strings.HasSuffix(id, manifest) {
		t.Errorf("%s runs %q, want the registry's %s", puller.Name, id, manifest)
	}
	timing(t, "pull by tag from the lab registry (the mirror missed) until Running", time.Since(start))
	after, _ := imagesReport(ctx, puller)
	for peer, b := range after.FetchedFromPeers {
		if b != before.FetchedFromPeers[peer] {
			t.Errorf("%s fetched %d bytes from peer %s: nobody held the image", puller.Name, b-before.FetchedFromPeers[peer], peer)
		}
	}

	// 2. The registry stops; the third node pulls the image by digest from the first puller.
	if out, err := kubectl(ctx, host, "delete", "pod", "registry", "--grace-period=0", "--force"); err != nil {
		t.Fatalf("stop the registry: %v\n%s", err, out)
	}
	waitFor(t, "the registry stopped", 60*time.Second, func() (bool, string) {
		_, err := late.Sh(ctx, "timeout 2 bash -c '</dev/tcp/"+host.IP+"/5000'")
		return err != nil, "still answering"
	})
	time.Sleep(6 * time.Second) // three announcement rounds: the puller's containerd holds the image
	before, _ = imagesReport(ctx, late)
	start = time.Now()
	apply(fmt.Sprintf(livePod, "live-digest", late.Name, reg+"/e2e/live@"+manifest))
	if id := running("live-digest"); !strings.HasSuffix(id, manifest) {
		t.Errorf("%s runs %q, want %s", late.Name, id, manifest)
	}
	timing(t, "pull by digest from a peer's containerd, the registry stopped, until Running", time.Since(start))
	after, _ = imagesReport(ctx, late)
	got := after.FetchedFromPeers[puller.Name] - before.FetchedFromPeers[puller.Name]
	t.Logf("BYTES %s fetched from %s's content store: %d", late.Name, puller.Name, got)
	if got == 0 {
		t.Errorf("%s fetched nothing from %s (%v)", late.Name, puller.Name, after.FetchedFromPeers)
	}
}
