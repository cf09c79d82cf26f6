package assets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/klauspost/compress/zstd"

	"knode.dev/knode/release/manifest"
	"knode.dev/knode/release/oci"
)

// synthetic builds a small payload the way the release build does: two files (one multi-call
// with a link), and an image assembled from a staged file.
func synthetic(t testing.TB) (fstest.MapFS, Manifest) {
	t.Helper()
	contents := map[string][]byte{
		"kube":   bytes.Repeat([]byte("kube multi-call binary "), 5000),
		"pause":  []byte("pause binary"),
		"bridge": []byte("cni bridge"),
	}
	payload := fstest.MapFS{}
	m := Manifest{Schema: manifest.Schema}
	staged := fstest.MapFS{}
	// kube has a blob to itself; pause and bridge share one.
	blobs := map[string][]byte{}
	add := func(name, path, blob string) {
		data := contents[name]
		sum := sha256.Sum256(data)
		blobs[blob] = append(blobs[blob], data...)
		staged[path] = &fstest.MapFile{Data: data}
		m.Files = append(m.Files, manifest.File{
			Name: name, Version: "v1.0.0", Path: path, Mode: 0o755, Blob: blob,
			Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		})
	}
	add("kube", "bin/kube", "kube.zst")
	add("pause", "bin/pause", "small.zst")
	add("bridge", "bin/cni/bridge", "small.zst")
	for _, name := range []string{"kube.zst", "small.zst"} {
		blob := compress(t, blobs[name])
		payload[name] = &fstest.MapFile{Data: blob}
		b := manifest.Blob{Name: name, Size: int64(len(blob))}
		for _, f := range m.Files {
			if f.Blob == name {
				b.Files = append(b.Files, f.Name)
			}
		}
		m.Blobs = append(m.Blobs, b)
	}
	m.Programs = []manifest.Program{
		{Name: "kube", Version: "v1.0.0", File: "kube", Path: "bin/kube"},
		{Name: "kubelet", Version: "v1.0.0", File: "kube", Path: "bin/kubelet"},
		{Name: "kubectl", Version: "v1.0.0", File: "kube", Path: "bin/kubectl"},
	}
	img := oci.Image{
		Ref:        "registry.k8s.io/pause:3.10.2",
		Entrypoint: []string{"/pause"},
		Files:      []oci.File{{Path: "pause", Mode: 0o755, Source: "bin/pause"}},
	}
	var tarball bytes.Buffer
	digest, err := oci.Write(&tarball, img, staged)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tarball.Bytes())
	m.Images = []manifest.Image{{
		Name: "pause", Path: "images/pause.tar", Size: int64(tarball.Len()),
		SHA256: hex.EncodeToString(sum[:]), Digest: digest, Image: img,
	}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	payload[manifest.FileName] = &fstest.MapFile{Data: data}
	return payload, m
}

func compress(t testing.TB, data []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

// setManifest replaces the payload's manifest.
func setManifest(t testing.TB, payload fstest.MapFS, m Manifest) {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	payload[manifest.FileName] = &fstest.MapFile{Data: data}
}

// tree lists every entry under dir with its kind, size and (for files) content hash, to
// compare data directories before and after an operation.
func tree(t testing.TB, fsys fs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String() + " " + info.ModTime().String()
		if info.Mode().IsRegular() {
			data, err := fs.ReadFile(fsys, path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
