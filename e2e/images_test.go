//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
	"knode.dev/knode/release/oci"
)

// The lab's test images: each one static binary built from Go module sources on the host, with
// the Kubernetes version the payload pins; no registry and no prebuilt image is involved.
const (
	// echoImage is the workload image: agnhost (k8s.io/kubernetes/test/images), whose
	// `netexec` serves its hostname.
	echoImage = "registry.k8s.io/e2e-test-images/agnhost:knode-e2e"
	// sampleAPIServerImage is the aggregated API server of TestScenarioSecurity: upstream's
	// k8s.io/sample-apiserver and its etcd in one binary (testdata/sampleapiserver).
	sampleAPIServerImage = "registry.k8s.io/e2e-test-images/sample-apiserver:knode-e2e"
	// registryImage is a real registry: upstream distribution's (testdata/registry, a module of
	// its own: the registry's dependencies have nothing to do with Kubernetes').
	registryImage = "registry.knode.invalid/e2e/registry:knode-e2e"
)

// labImage is one test image, built at most once per run and cached in e2e/_work by the hash
// of its inputs (the Kubernetes helper module and the main package), like the node image.
type labImage struct {
	ref string
	// name is the binary's name: the image holds /<name> and runs it.
	name string
	// pkg is the package to build, or main a file under testdata holding a main package, or
	// module a directory under testdata holding a module (go.mod, go.sum) with its main package.
	pkg, main, module string
	// prebuilt names an environment variable that may point at a static binary to use instead.
	prebuilt string

	once sync.Once
	tar  string
	err  error
}

var (
	echoImg = &labImage{ref: echoImage, name: "agnhost", pkg: "k8s.io/kubernetes/test/images/agnhost",
		prebuilt: "KNODE_E2E_AGNHOST"}
	sampleAPIServerImg = &labImage{ref: sampleAPIServerImage, name: "sample-apiserver",
		main: "testdata/sampleapiserver/main.go", prebuilt: "KNODE_E2E_SAMPLE_APISERVER"}
	registryImg = &labImage{ref: registryImage, name: "registry", module: "testdata/registry",
		prebuilt: "KNODE_E2E_REGISTRY"}
)

// echoImageTar returns the workload image's OCI tarball.
func echoImageTar(t *testing.T) string { return echoImg.tarball(t) }

// tarball builds the image (once per run) and returns its OCI image-layout tarball, which
// `ctr images import` takes.
func (li *labImage) tarball(t *testing.T) string {
	t.Helper()
	li.once.Do(func() {
		start := time.Now()
		li.tar, li.err = li.build()
		if li.err == nil {
			timing(t, li.name+" image ready (built or cached, packed)", time.Since(start))
			if fi, err := os.Stat(li.tar); err == nil {
				t.Logf("IMAGE %s: %.1f MB tarball", li.ref, float64(fi.Size())/1e6)
			}
		}
	})
	if li.err != nil {
		t.Fatalf("image %s: %v", li.ref, li.err)
	}
	return li.tar
}

func (li *labImage) build() (string, error) {
	work, _ := filepath.Abs(filepath.Join("_work", li.name))
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	bin := os.Getenv(li.prebuilt)
	if bin == "" {
		var err error
		if bin, err = li.buildBinary(work); err != nil {
			return "", err
		}
	}
	tar := filepath.Join(work, li.name+".oci.tar")
	f, err := os.Create(tar)
	if err != nil {
		return "", err
	}
	defer f.Close()
	img := oci.Image{Ref: li.ref, Entrypoint: []string{"/" + li.name},
		Files: []oci.File{{Path: li.name, Mode: 0o755, Source: filepath.Base(bin)}}}
	if _, err := oci.Write(f, img, os.DirFS(filepath.Dir(bin))); err != nil {
		return "", fmt.Errorf("pack %s: %w", bin, err)
	}
	return tar, f.Close()
}

// buildBinary builds the image's binary in a scratch copy of release/build/kube's go.mod and
// go.sum (the test images need a few modules the payload does not, and the release module must
// stay untouched), unless a binary built from the same inputs is cached.
func (li *labImage) buildBinary(work string) (string, error) {
	if li.module != "" {
		return li.buildModule(work)
	}
	h := sha256.New()
	var inputs [][]byte
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", "release", "build", "kube", f))
		if err != nil {
			return "", fmt.Errorf("%s: the Kubernetes helper module: %w", li.name, err)
		}
		inputs = append(inputs, b)
		h.Write(b)
	}
	var mainSrc []byte
	if li.main != "" {
		var err error
		if mainSrc, err = os.ReadFile(li.main); err != nil {
			return "", err
		}
		h.Write(mainSrc)
	}
	h.Write([]byte(li.pkg))
	out := filepath.Join(work, li.name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	mod := filepath.Join(work, "mod")
	if err := os.RemoveAll(mod); err != nil {
		return "", err
	}
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", err
	}
	files := map[string][]byte{"go.mod": inputs[0], "go.sum": inputs[1]}
	pkg := li.pkg
	if mainSrc != nil {
		files["main.go"], pkg = mainSrc, "."
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(mod, name), b, 0o644); err != nil {
			return "", err
		}
	}
	cmd := exec.Command("go", "build", "-mod=mod", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", li.name, err, b)
	}
	return out, nil
}

// buildModule builds the main package of the image's own module (its committed go.mod and
// go.sum pin every dependency), unless a binary built from the same inputs is cached.
func (li *labImage) buildModule(work string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(li.module, f))
		if err != nil {
			return "", fmt.Errorf("%s: %w", li.name, err)
		}
		h.Write(b)
	}
	out := filepath.Join(work, li.name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.Command("go", "build", "-mod=readonly", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = li.module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", li.name, err, b)
	}
	return out, nil
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
