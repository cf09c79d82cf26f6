package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"knode.dev/knode/release/oci"
)

// EchoRef is the labs' workload image: agnhost (k8s.io/kubernetes/test/images), whose
// `netexec` serves its hostname. The container lab and the VM lab run the same one.
const EchoRef = "registry.k8s.io/e2e-test-images/agnhost:knode-e2e"

// TestImage is one test image: a static binary built from Go module sources on the host with
// the Kubernetes version the payload pins, packed as an OCI image-layout tarball; no registry
// and no prebuilt image is involved. It is built at most once per TestImage and cached under
// the repository's e2e/_work by the hash of its inputs (the Kubernetes helper module and the
// main package).
type TestImage struct {
	// Ref is the image's reference; Name the binary's name: the image holds /Name and runs it.
	Ref, Name string
	// Pkg is the package to build, or Main a file (relative to the repository) holding a main
	// package, or Module a directory (relative to the repository) holding a module of its own
	// (go.mod, go.sum) with its main package, built with its own pinned requirements.
	Pkg, Main, Module string
	// Prebuilt names an environment variable that may point at a static binary to use instead.
	Prebuilt string

	once sync.Once
	tar  string
	err  error
}

// EchoImage is a new handle on the workload image (EchoRef).
func EchoImage() *TestImage {
	return &TestImage{Ref: EchoRef, Name: "agnhost", Pkg: "k8s.io/kubernetes/test/images/agnhost",
		Prebuilt: "KNODE_E2E_AGNHOST"}
}

// Tarball builds the image once and returns the path of its OCI image-layout tarball, which
// `ctr images import` and `knode images import` take; repo is the repository's root.
func (ti *TestImage) Tarball(repo string) (string, error) {
	ti.once.Do(func() { ti.tar, ti.err = ti.build(repo) })
	if ti.err != nil {
		return "", fmt.Errorf("test image %s: %w", ti.Ref, ti.err)
	}
	return ti.tar, nil
}

func (ti *TestImage) build(repo string) (string, error) {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return "", err
	}
	work := filepath.Join(repo, "e2e", "_work", ti.Name)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	bin := os.Getenv(ti.Prebuilt)
	if bin == "" {
		var err error
		if bin, err = ti.buildBinary(repo, work); err != nil {
			return "", err
		}
	}
	tar := filepath.Join(work, ti.Name+".oci.tar")
	f, err := os.Create(tar)
	if err != nil {
		return "", err
	}
	defer f.Close()
	img := oci.Image{Ref: ti.Ref, Entrypoint: []string{"/" + ti.Name},
		Files: []oci.File{{Path: ti.Name, Mode: 0o755, Source: filepath.Base(bin)}}}
	if _, err := oci.Write(f, img, os.DirFS(filepath.Dir(bin))); err != nil {
		return "", fmt.Errorf("pack %s: %w", bin, err)
	}
	return tar, f.Close()
}

// buildBinary builds the image's binary in a scratch copy of release/build/kube's go.mod and
// go.sum (the test images need a few modules the payload does not, and the release module must
// stay untouched), unless a binary built from the same inputs is cached.
func (ti *TestImage) buildBinary(repo, work string) (string, error) {
	if ti.Module != "" {
		return ti.buildModule(repo, work)
	}
	h := sha256.New()
	var inputs [][]byte
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(repo, "release", "build", "kube", f))
		if err != nil {
			return "", fmt.Errorf("%s: the Kubernetes helper module: %w", ti.Name, err)
		}
		inputs = append(inputs, b)
		h.Write(b)
	}
	var mainSrc []byte
	if ti.Main != "" {
		var err error
		if mainSrc, err = os.ReadFile(filepath.Join(repo, ti.Main)); err != nil {
			return "", err
		}
		h.Write(mainSrc)
	}
	h.Write([]byte(ti.Pkg))
	out := filepath.Join(work, ti.Name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
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
	pkg := ti.Pkg
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
		return "", fmt.Errorf("go build %s: %w\n%s", ti.Name, err, b)
	}
	return out, nil
}

// buildModule builds a test image's own module (Module), unless a binary built from the same
// go.mod, go.sum and main.go is cached.
func (ti *TestImage) buildModule(repo, work string) (string, error) {
	dir := filepath.Join(repo, ti.Module)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("%s: %w", ti.Name, err)
		}
		h.Write(b)
	}
	out := filepath.Join(work, ti.Name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	cmd := exec.Command("go", "build", "-mod=readonly", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", ti.Name, err, b)
	}
	return out, nil
}
