package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"time"
)

// Media types written by this package.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// epoch is the modification time of every entry, inside the layer and in the tarball.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// Write writes img as an OCI image-layout tarball to w, reading regular files' contents from
// sources (File.Source is a path in sources). It returns the image manifest's digest
// ("sha256:...").
func Write(w io.Writer, img Image, sources fs.FS) (string, error) {
	if err := img.Validate(); err != nil {
		return "", err
	}
	entries := img.entries()
	// First pass: the layer's digest and size, which the config and manifest name.
	counter := &countingHash{h: sha256.New()}
	if err := writeLayer(counter, entries, sources); err != nil {
		return "", fmt.Errorf("image %s: layer: %w", img.Ref, err)
	}
	layerDigest, layerSize := counter.digest(), counter.n

	config, err := json.Marshal(imageConfig(img, layerDigest))
	if err != nil {
		return "", fmt.Errorf("image %s: config: %w", img.Ref, err)
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeManifest,
		"config":        descriptor{MediaType: MediaTypeConfig, Digest: digest(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: MediaTypeLayer, Digest: layerDigest, Size: layerSize}},
	})
	if err != nil {
		return "", fmt.Errorf("image %s: manifest: %w", img.Ref, err)
	}
	manifestDigest := digest(manifest)
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeIndex,
		"manifests": []descriptor{{
			MediaType: MediaTypeManifest, Digest: manifestDigest, Size: int64(len(manifest)),
			Platform: &platform{Architecture: "amd64", OS: "linux"},
			Annotations: map[string]string{
				"io.containerd.image.name":          img.Ref,
				"org.opencontainers.image.ref.name": img.Tag(),
			},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("image %s: index: %w", img.Ref, err)
	}

	out := tar.NewWriter(w)
	if err := putBytes(out, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return "", fmt.Errorf("image %s: %w", img.Ref, err)
	}
	if err := out.WriteHeader(fileHeader(blobPath(layerDigest), layerSize)); err != nil {
		return "", fmt.Errorf("image %s: layer header: %w", img.Ref, err)
	}
	// Second pass: the layer itself, checked against the first pass in case a source changed.
	again := &countingHash{h: sha256.New(), w: out}
	if err := writeLayer(again, entries, sources); err != nil {
		return "", fmt.Errorf("image %s: layer: %w", img.Ref, err)
	}
	if again.digest() != layerDigest {
		return "", fmt.Errorf("image %s: a source file changed while the image was written", img.Ref)
	}
	for _, blob := range [][]byte{config, manifest} {
		if err := putBytes(out, blobPath(digest(blob)), blob); err != nil {
			return "", fmt.Errorf("image %s: %w", img.Ref, err)
		}
	}
	if err := putBytes(out, "index.json", index); err != nil {
		return "", fmt.Errorf("image %s: %w", img.Ref, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("image %s: %w", img.Ref, err)
	}
	return manifestDigest, nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func imageConfig(img Image, layerDigest string) map[string]any {
	cfg := map[string]any{}
	if len(img.Entrypoint) > 0 {
		cfg["Entrypoint"] = img.Entrypoint
	}
	if len(img.Cmd) > 0 {
		cfg["Cmd"] = img.Cmd
	}
	if len(img.Env) > 0 {
		cfg["Env"] = img.Env
	}
	if img.WorkingDir != "" {
		cfg["WorkingDir"] = img.WorkingDir
	}
	return map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch().Format(time.RFC3339),
		"config":       cfg,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		"history":      []map[string]string{{"created": epoch().Format(time.RFC3339), "created_by": "knode release"}},
	}
}

// writeLayer writes the layer's uncompressed tar stream.
func writeLayer(w io.Writer, entries []File, sources fs.FS) error {
	tw := tar.NewWriter(w)
	for _, f := range entries {
		hdr := &tar.Header{
			Name: f.Path, Mode: int64(f.Mode.Perm()), ModTime: epoch(), Format: tar.FormatPAX,
			Uid: 0, Gid: 0,
		}
		switch {
		case f.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, f.Path+"/"
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, f.Link, 0o777
		default:
			hdr.Typeflag = tar.TypeReg
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		if hdr.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
			continue
		}
		if err := copyFile(tw, hdr, f.Source, sources); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return tw.Close()
}

func copyFile(tw *tar.Writer, hdr *tar.Header, source string, sources fs.FS) error {
	src, err := sources.Open(source)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	hdr.Size = info.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("copy %s: %w", source, err)
	}
	return nil
}

func putBytes(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(fileHeader(name, int64(len(data)))); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func fileHeader(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: epoch(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
}

func blobPath(d string) string { return "blobs/sha256/" + d[len("sha256:"):] }

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// countingHash hashes and counts what is written, and passes it on to w when w is set.
type countingHash struct {
	h hash.Hash
	w io.Writer
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	if c.w != nil {
		if _, err := c.w.Write(p); err != nil {
			return 0, err
		}
	}
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *countingHash) digest() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }
