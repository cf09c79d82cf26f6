// Package registrytest builds container images in memory for tests: OCI
// layouts and docker-archive tarballs, from files given by the test, with
// no registry and no tool. It never ships in knode.
package registrytest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one file of a layer.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Image is an image built in memory: its blobs by digest.
type Image struct {
	Name     string
	Manifest digest.Digest
	Config   digest.Digest
	Layers   []digest.Digest
	Blobs    map[digest.Digest][]byte
}

// NewImage makes an image named name (as written in an archive, e.g.
// app:v1) for linux/amd64 whose layers are uncompressed tars of the given
// files, running entrypoint (may be nil).
func NewImage(name string, entrypoint []string, layers ...[]File) Image {
	im := Image{Name: name, Blobs: map[digest.Digest][]byte{}}
	put := func(b []byte, mt string) ocispec.Descriptor {
		d := digest.FromBytes(b)
		im.Blobs[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, files := range layers {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, f := range files {
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
			}
			tw.WriteHeader(&tar.Header{Name: f.Name, Mode: mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg})
			tw.Write(f.Data)
		}
		tw.Close()
		l := put(buf.Bytes(), ocispec.MediaTypeImageLayer)
		descs = append(descs, l)
		diffIDs = append(diffIDs, l.Digest)
		im.Layers = append(im.Layers, l.Digest)
	}
	cfgb, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config: ocispec.ImageConfig{Entrypoint: entrypoint}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cfg := put(cfgb, ocispec.MediaTypeImageConfig)
	im.Config = cfg.Digest
	mb, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfg, Layers: descs})
	im.Manifest = put(mb, ocispec.MediaTypeImageManifest).Digest
	return im
}

// OCIFiles is the image as an OCI layout's files, named by the
// org.opencontainers.image.ref.name annotation.
func (im Image) OCIFiles() map[string][]byte {
	files := map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	for d, b := range im.Blobs {
		files["blobs/sha256/"+d.Encoded()] = b
	}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: im.Manifest, Size: int64(len(im.Blobs[im.Manifest])),
			Annotations: map[string]string{ocispec.AnnotationRefName: im.Name}}}})
	files["index.json"] = idx
	return files
}

// dockerManifest is one image of docker save's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// DockerFiles is the image as docker save writes it (layers as
// <n>/layer.tar, the config as <hex>.json).
func (im Image) DockerFiles() map[string][]byte {
	files := map[string][]byte{}
	dm := dockerManifest{Config: im.Config.Encoded() + ".json", RepoTags: []string{im.Name}}
	files[dm.Config] = im.Blobs[im.Config]
	for i, l := range im.Layers {
		n := fmt.Sprintf("%d/layer.tar", i)
		files[n] = im.Blobs[l]
		dm.Layers = append(dm.Layers, n)
	}
	b, _ := json.Marshal([]dockerManifest{dm})
	files["manifest.json"] = b
	return files
}

// Tar writes files into a tar (in name order), compressed with "", "gzip"
// or "zstd".
func Tar(files map[string][]byte, compression string) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var closer io.Closer
	switch compression {
	case "":
	case "gzip":
		zw := gzip.NewWriter(&buf)
		w, closer = zw, zw
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		w, closer = zw, zw
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if closer != nil {
		if err := closer.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
