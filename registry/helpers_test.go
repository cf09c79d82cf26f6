package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testImage is an image built in memory: its blobs by digest and its
// manifest's digest.
type testImage struct {
	name     string
	manifest digest.Digest
	config   digest.Digest
	layers   []digest.Digest
	blobs    map[digest.Digest][]byte
}

// newTestImage makes an image whose layers are tars holding the given
// file contents (one file per layer).
func newTestImage(t *testing.T, name string, files ...string) testImage {
	t.Helper()
	im := testImage{name: name, blobs: map[digest.Digest][]byte{}}
	put := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		im.blobs[d] = b
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for i, content := range files {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "file" + string(rune('a'+i)), Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
		tw.Close()
		l := put(buf.Bytes())
		l.MediaType = ocispec.MediaTypeImageLayer
		layers = append(layers, l)
		diffIDs = append(diffIDs, l.Digest)
		im.layers = append(im.layers, l.Digest)
	}
	cfgb, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cfg := put(cfgb)
	cfg.MediaType = ocispec.MediaTypeImageConfig
	im.config = cfg.Digest
	mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers})
	im.manifest = put(mb).Digest
	return im
}

// ociFiles is the image as an OCI layout's files.
func (im testImage) ociFiles() map[string][]byte {
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	for d, b := range im.blobs {
		files["blobs/sha256/"+d.Encoded()] = b
	}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: im.manifest, Size: int64(len(im.blobs[im.manifest])),
			Annotations: map[string]string{ocispec.AnnotationRefName: im.name}}}})
	files["index.json"] = idx
	return files
}

// dockerFiles is the image as docker save writes it (uncompressed layers
// as <n>/layer.tar, the config as <hex>.json).
func (im testImage) dockerFiles() map[string][]byte {
	files := map[string][]byte{}
	dm := dockerManifest{Config: im.config.Encoded() + ".json", RepoTags: []string{im.name}}
	files[dm.Config] = im.blobs[im.config]
	for i, l := range im.layers {
		n := string(rune('a'+i)) + "/layer.tar"
		files[n] = im.blobs[l]
		dm.Layers = append(dm.Layers, n)
	}
	b, _ := json.Marshal([]dockerManifest{dm})
	files["manifest.json"] = b
	return files
}

// tarOf writes files into a tar, compressed with "", "gzip" or "zstd".
func tarOf(t *testing.T, files map[string][]byte, compression string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var closer io.Closer
	switch compression {
	case "gzip":
		zw := gzip.NewWriter(&buf)
		w, closer = zw, zw
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w, closer = zw, zw
	}
	tw := tar.NewWriter(w)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if closer != nil {
		closer.Close()
	}
	return buf.Bytes()
}

// writeTemp writes b to a file in a temporary directory.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// storeWith is a store holding the images, imported as OCI tars.
func storeWith(t *testing.T, ims ...testImage) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range ims {
		if _, err := s.Import(context.Background(), writeTemp(t, "im.tar", tarOf(t, im.ociFiles(), "")), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
