package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"
)

func testImage() (Image, fstest.MapFS) {
	sources := fstest.MapFS{
		"bin/kube": {Data: []byte("#!kube binary")},
		"bin/etcd": {Data: []byte("etcd binary")},
	}
	img := Image{
		Ref:        "knode.local/control-plane:v1.36.3",
		Entrypoint: []string{"/usr/local/bin/kube"},
		Env:        []string{"PATH=/usr/local/bin"},
		Files: []File{
			{Path: "usr/local/bin/kube", Mode: 0o755, Source: "bin/kube"},
			{Path: "usr/local/bin/kubelet", Mode: fs.ModeSymlink | 0o777, Link: "kube"},
			{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "etc/etcd", Mode: 0o755, Source: "bin/etcd"},
		},
	}
	return img, sources
}

func readTar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = data
	}
}

func TestWriteIsDeterministicAndConsistent(t *testing.T) {
	img, sources := testImage()
	var a, b bytes.Buffer
	da, err := Write(&a, img, sources)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, img, sources); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same image differ")
	}
	files := readTar(t, a.Bytes())
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != da {
		t.Fatalf("index = %+v, want one manifest %s", index, da)
	}
	ann := index.Manifests[0].Annotations
	if ann["io.containerd.image.name"] != img.Ref || ann["org.opencontainers.image.ref.name"] != "v1.36.3" {
		t.Fatalf("annotations = %v", ann)
	}
	// Every blob's name is its digest.
	for name, data := range files {
		if len(name) > len("blobs/sha256/") && name[:len("blobs/sha256/")] == "blobs/sha256/" {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != name[len("blobs/sha256/"):] {
				t.Errorf("blob %s has another digest", name)
			}
		}
	}
	var manifest struct {
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(files[blobPath(da)], &manifest); err != nil {
		t.Fatal(err)
	}
	layer := readTar(t, files[blobPath(manifest.Layers[0].Digest)])
	if string(layer["usr/local/bin/kube"]) != "#!kube binary" {
		t.Errorf("layer kube = %q", layer["usr/local/bin/kube"])
	}
	for _, dir := range []string{"usr/", "usr/local/", "usr/local/bin/", "etc/", "tmp/"} {
		if _, ok := layer[dir]; !ok {
			t.Errorf("layer lacks directory %s", dir)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Image{
		{Ref: "knode.local/x"},
		{Ref: "x:1", Files: []File{{Path: "/abs", Mode: 0o644, Source: "a"}}},
		{Ref: "x:1", Files: []File{{Path: "a/../b", Mode: 0o644, Source: "a"}}},
		{Ref: "x:1", Files: []File{{Path: "a", Mode: 0o644}}},
		{Ref: "x:1", Files: []File{{Path: "a", Mode: fs.ModeSymlink}}},
		{Ref: "x:1", Files: []File{{Path: "a", Mode: 0o644, Source: "a"}, {Path: "a", Mode: 0o644, Source: "a"}}},
	}
	for _, img := range bad {
		if err := img.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", img)
		}
	}
}

func TestTag(t *testing.T) {
	for ref, want := range map[string]string{
		"registry.k8s.io/pause:3.10.2": "3.10.2",
		"localhost:5000/x":             "",
		"localhost:5000/x:v1":          "v1",
	} {
		if got := (Image{Ref: ref}).Tag(); got != want {
			t.Errorf("Tag(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestWriteFailsOnMissingSource(t *testing.T) {
	img, _ := testImage()
	if _, err := Write(io.Discard, img, fstest.MapFS{}); err == nil {
		t.Fatal("Write with missing sources succeeded")
	}
}
