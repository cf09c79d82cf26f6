//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// The lab's test images (lab.TestImage): each one static binary built from Go module sources
// on the host, with the Kubernetes version the payload pins.
const (
	// echoImage is the workload image (agnhost), shared with the VM lab.
	echoImage = lab.EchoRef
	// sampleAPIServerImage is the aggregated API server of TestScenarioSecurity: upstream's
	// k8s.io/sample-apiserver and its etcd in one binary (testdata/sampleapiserver).
	sampleAPIServerImage = "registry.k8s.io/e2e-test-images/sample-apiserver:knode-e2e"
	// registryImage is a real registry: upstream distribution's (testdata/registry, a module of
	// its own: the registry's dependencies have nothing to do with Kubernetes').
	registryImage = "registry.knode.invalid/e2e/registry:knode-e2e"
)

var (
	echoImg            = lab.EchoImage()
	sampleAPIServerImg = &lab.TestImage{Ref: sampleAPIServerImage, Name: "sample-apiserver",
		Main: "e2e/testdata/sampleapiserver/main.go", Prebuilt: "KNODE_E2E_SAMPLE_APISERVER"}
	registryImg = &lab.TestImage{Ref: registryImage, Name: "registry", Module: "e2e/testdata/registry",
		Prebuilt: "KNODE_E2E_REGISTRY"}
)

// echoImageTar returns the workload image's OCI tarball.
func echoImageTar(t *testing.T) string { return imageTar(t, echoImg) }

// imageTar builds the image (once per run) and returns its OCI image-layout tarball, which
// `ctr images import` takes.
func imageTar(t *testing.T, ti *lab.TestImage) string {
	t.Helper()
	start := time.Now()
	tar, err := ti.Tarball("..")
	if err != nil {
		t.Fatal(err)
	}
	timing(t, ti.Name+" image ready (built or cached, packed)", time.Since(start))
	if fi, err := os.Stat(tar); err == nil {
		t.Logf("IMAGE %s: %.1f MB tarball", ti.Ref, float64(fi.Size())/1e6)
	}
	return tar
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
			t.Fatalf("import %s on %s: %v\n%s", filepath.Base(tar), n.Name, err, out)
		}
	}
}
