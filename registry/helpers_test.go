package registry

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/registry/registrytest"
)

// testImage is an image built in memory (registrytest), with the short
// names these tests use.
type testImage struct {
	name     string
	manifest digest.Digest
	config   digest.Digest
	layers   []digest.Digest
	blobs    map[digest.Digest][]byte
	im       registrytest.Image
}

// newTestImage makes an image whose layers each hold one file with the
// given content.
func newTestImage(t testing.TB, name string, contents ...string) testImage {
	t.Helper()
	var layers [][]registrytest.File
	for i, c := range contents {
		layers = append(layers, []registrytest.File{{Name: "file" + string(rune('a'+i)), Data: []byte(c)}})
	}
	im := registrytest.NewImage(name, nil, layers...)
	return testImage{name: name, manifest: im.Manifest, config: im.Config, layers: im.Layers, blobs: im.Blobs, im: im}
}

func (ti testImage) ociFiles() map[string][]byte    { return ti.im.OCIFiles() }
func (ti testImage) dockerFiles() map[string][]byte { return ti.im.DockerFiles() }

// tarOf writes files into a tar, compressed with "", "gzip" or "zstd".
func tarOf(t testing.TB, files map[string][]byte, compression string) []byte {
	t.Helper()
	b, err := registrytest.Tar(files, compression)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTemp writes b to a file in a temporary directory.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newStore is a store over a fake containerd of its own.
func newStore(t testing.TB) (*Store, *registrytest.Containerd) {
	t.Helper()
	ctrd := registrytest.StartContainerd(t)
	cs, err := DialContainerd(ctrd.Socket, CRINamespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	s, err := OpenStore(t.TempDir(), cs)
	if err != nil {
		t.Fatal(err)
	}
	return s, ctrd
}

// storeWith is a store holding the images, imported as OCI tars.
func storeWith(t testing.TB, ims ...testImage) *Store {
	t.Helper()
	s, _ := storeWithCtrd(t, ims...)
	return s
}

// storeWithCtrd is storeWith, and its fake containerd.
func storeWithCtrd(t testing.TB, ims ...testImage) (*Store, *registrytest.Containerd) {
	t.Helper()
	s, ctrd := newStore(t)
	for _, im := range ims {
		if _, err := s.Import(context.Background(), writeTemp(t, "im.tar", tarOf(t, im.ociFiles(), "")), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return s, ctrd
}
