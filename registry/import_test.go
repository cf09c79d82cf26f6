package registry

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/opencontainers/go-digest"
	"knode.dev/knode/release/oci"
)

func TestImportKinds(t *testing.T) {
	im := newTestImage(t, "example.com/team/app:v1", "hello", "world")
	for _, tc := range []struct {
		name, compression string
		docker            bool
	}{
		{"oci", "", false}, {"oci-gzip", "gzip", false}, {"oci-zstd", "zstd", false},
		{"docker", "", true}, {"docker-gzip", "gzip", true}, {"docker-zstd", "zstd", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctrd := newStore(t)
			files := im.ociFiles()
			if tc.docker {
				files = im.dockerFiles()
			}
			imgs, err := s.Import(context.Background(), writeTemp(t, "a.tar", tarOf(t, files, tc.compression)), time.Unix(100, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Ref != "example.com/team/app:v1" || imgs[0].Imported != 100e9 {
				t.Fatalf("imported %+v", imgs)
			}
			if !tc.docker && imgs[0].Digest != im.manifest {
				t.Errorf("digest %s, want the archive's %s", imgs[0].Digest, im.manifest)
			}
			d, err := s.Resolve(context.Background(), "example.com/team/app:v1")
			if err != nil || d != imgs[0].Digest {
				t.Fatalf("resolve: %s %v", d, err)
			}
			// containerd's collector keeps the image whole: the record
			// holds the manifest, its labels the config and layers.
			if ctrd.Leases() != 0 {
				t.Errorf("%d leases left", ctrd.Leases())
			}
			ctrd.GC()
			if got, ok := ctrd.Image("example.com/team/app:v1"); !ok || got != imgs[0].Digest {
				t.Errorf("containerd's record: %s %v", got, ok)
			}
			held, names, err := s.Held(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// manifest, config, two layers (a docker archive's manifest is made here).
			if len(held) != 4 || !slices.Contains(held, im.config) || !slices.Contains(held, im.layers[1]) || ctrd.Blobs() != 4 {
				t.Errorf("held %v, containerd holds %d blobs", held, ctrd.Blobs())
			}
			if len(names) != 1 || names[0].Ref != imgs[0].Ref {
				t.Errorf("names announced: %v", names)
			}
			assertNoStaging(t, s)
		})
	}
}

func TestImportDirectory(t *testing.T) {
	im := newTestImage(t, "app", "x")
	dir := t.TempDir()
	for name, b := range im.ociFiles() {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	s, _ := newStore(t)
	imgs, err := s.Import(context.Background(), dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Ref != "docker.io/library/app:latest" || imgs[0].Digest != im.manifest {
		t.Fatalf("imported %+v", imgs)
	}
}

// A corrupt or truncated archive is refused with a clear error and leaves
// nothing behind: no reference, no blob, no staging.
func TestImportCorrupt(t *testing.T) {
	im := newTestImage(t, "app:v1", "hello", "world")
	bad := im.ociFiles()
	bad["blobs/sha256/"+im.layers[0].Encoded()] = []byte("tampered")
	missing := im.ociFiles()
	delete(missing, "blobs/sha256/"+im.layers[1].Encoded())
	good := tarOf(t, im.ociFiles(), "gzip")
	for name, b := range map[string][]byte{
		"tampered blob":  tarOf(t, bad, ""),
		"missing layer":  tarOf(t, missing, "zstd"),
		"truncated gzip": good[:len(good)/2],
		"not a tar":      []byte("this is not an archive at all, but long enough to look at"),
		"no index":       tarOf(t, map[string][]byte{"hello.txt": []byte("hi")}, ""),
	} {
		t.Run(name, func(t *testing.T) {
			s, ctrd := newStore(t)
			_, err := s.Import(context.Background(), writeTemp(t, "bad.tar", b), time.Now())
			if !errors.Is(err, ErrArchive) {
				t.Fatalf("err %v, want ErrArchive", err)
			}
			t.Log(err)
			if imgs, _ := s.Images(); len(imgs) != 0 {
				t.Errorf("references left: %v", imgs)
			}
			if ctrd.Blobs() != 0 || ctrd.Leases() != 0 {
				t.Errorf("%d blobs and %d leases left in containerd", ctrd.Blobs(), ctrd.Leases())
			}
			assertNoStaging(t, s)
		})
	}
}

// Re-importing a name moves it to the new digest; an older import of it
// (arriving later) does not move it back.
func TestImportRetag(t *testing.T) {
	a, b := newTestImage(t, "app:v1", "one"), newTestImage(t, "app:v1", "two")
	s, ctrd := newStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, writeTemp(t, "a.tar", tarOf(t, a.ociFiles(), "")), time.Unix(10, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, writeTemp(t, "b.tar", tarOf(t, b.ociFiles(), "")), time.Unix(20, 0)); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Resolve(ctx, "docker.io/library/app:v1"); d != b.manifest {
		t.Fatalf("after re-import: %s, want %s", d, b.manifest)
	}
	// containerd's record moved too; the old image's blobs are no longer
	// announced, and containerd's collector removes them.
	if d, _ := ctrd.Image("docker.io/library/app:v1"); d != b.manifest {
		t.Fatalf("containerd's record after re-import: %s", d)
	}
	if held, _, _ := s.Held(ctx); slices.Contains(held, a.layers[0]) || !slices.Contains(held, b.layers[0]) {
		t.Errorf("held after re-import: %v", held)
	}
	ctrd.GC()
	if ctrd.Has(a.layers[0]) || !ctrd.Has(b.layers[0]) {
		t.Error("containerd's collector: the old layer should go, the new stay")
	}
	ch, err := s.SetRefs([]Image{{Ref: "docker.io/library/app:v1", Digest: a.manifest, Imported: 15e9}})
	if err != nil || len(ch) != 0 {
		t.Fatalf("older import applied: %v %v", ch, err)
	}
	if d, _ := s.Resolve(ctx, "docker.io/library/app:v1"); d != b.manifest {
		t.Fatalf("older import won: %s", d)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx": "docker.io/library/nginx:latest", "nginx:1.27": "docker.io/library/nginx:1.27",
		"team/app:v2": "docker.io/team/app:v2", "example.com/a/b:c": "example.com/a/b:c",
		"localhost:5000/x": "localhost:5000/x:latest", "docker.io/nginx": "docker.io/library/nginx:latest",
	} {
		if got, err := NormalizeRef(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "app@sha256:00", "a:b:c/d", "app:" + string(make([]byte, 200))} {
		if got, err := NormalizeRef(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

func assertNoStaging(t *testing.T, s *Store) {
	t.Helper()
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), tmpDir)); len(ents) != 0 {
		t.Errorf("staging left: %v", ents)
	}
}

// The payload's own image writer (release/oci, whose archives containerd's
// importer takes) writes archives this importer takes too.
func TestImportReleaseOCI(t *testing.T) {
	var buf bytes.Buffer
	img := oci.Image{Ref: "knode.local/tool:v1", Entrypoint: []string{"/tool"},
		Files: []oci.File{{Path: "tool", Mode: 0o755, Source: "tool"}}}
	if _, err := oci.Write(&buf, img, fstest.MapFS{"tool": {Data: []byte("#!/bin/true\n")}}); err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t)
	imgs, err := s.Import(context.Background(), writeTemp(t, "tool.tar", buf.Bytes()), time.Now())
	if err != nil || len(imgs) != 1 || imgs[0].Ref != "knode.local/tool:v1" {
		t.Fatalf("imported %+v: %v", imgs, err)
	}
	if held, _, _ := s.Held(context.Background()); len(held) != 3 {
		t.Errorf("held %v", held)
	}
}

// Removing an image drops its name and containerd's record; containerd's
// collector removes the blobs no other image shares, and the node stops
// announcing them. A name knode did not import is refused untouched.
func TestRemove(t *testing.T) {
	ctx := context.Background()
	a := newTestImage(t, "app:v1", "shared base", "app one")
	b := newTestImage(t, "app:v2", "shared base", "app two")
	s, ctrd := storeWithCtrd(t, a, b)
	if _, err := s.Remove(ctx, []string{"docker.io/library/app:v1", "docker.io/library/nginx:latest"}); !errors.Is(err, ErrNotImported) {
		t.Fatalf("removing a name knode did not import: %v", err)
	}
	if imgs, _ := s.Images(); len(imgs) != 2 {
		t.Fatalf("a refused removal changed the names: %v", imgs)
	}
	// The CRI's aliases of an image it unpacked: repo@digest and its ID.
	ctrd.SetImage("docker.io/library/app@"+a.manifest.String(), a.manifest, 1)
	ctrd.SetImage(a.config.String(), a.manifest, 1)
	ctrd.SetImage(b.config.String(), b.manifest, 1)
	gone, err := s.Remove(ctx, []string{"docker.io/library/app:v1"})
	if err != nil || len(gone) != 1 || gone[0].Digest != a.manifest {
		t.Fatalf("removed %v: %v", gone, err)
	}
	for _, name := range []string{"docker.io/library/app:v1", "docker.io/library/app@" + a.manifest.String(), a.config.String()} {
		if _, ok := ctrd.Image(name); ok {
			t.Errorf("containerd's record %s is left", name)
		}
	}
	if _, ok := ctrd.Image(b.config.String()); !ok {
		t.Error("the other image's alias was removed")
	}
	for _, d := range []digest.Digest{a.manifest, a.config, a.layers[1]} {
		if ctrd.Has(d) {
			t.Errorf("blob %s of the removed image left in containerd", d)
		}
	}
	if !ctrd.Has(b.layers[0]) || !ctrd.Has(b.layers[1]) || !ctrd.Has(b.manifest) {
		t.Error("the other image lost blobs (the shared layer must stay)")
	}
	held, names, _ := s.Held(ctx)
	if slices.Contains(held, a.layers[1]) || len(names) != 1 || names[0].Ref != "docker.io/library/app:v2" {
		t.Errorf("still announced: blobs %v names %v", held, names)
	}
}

// A manifest containerd held already without its children's references
// (another writer's) is labelled by the import, so containerd's collector
// keeps the image's layers.
func TestImportLabelsExistingManifest(t *testing.T) {
	im := newTestImage(t, "app:v1", "layer")
	s, ctrd := newStore(t)
	ctrd.Put(im.blobs[im.manifest])
	if _, err := s.Import(context.Background(), writeTemp(t, "a.tar", tarOf(t, im.ociFiles(), "")), time.Now()); err != nil {
		t.Fatal(err)
	}
	ctrd.GC()
	if !ctrd.Has(im.layers[0]) || !ctrd.Has(im.config) {
		t.Errorf("the collector took the image's blobs; the manifest's labels: %v", ctrd.Labels(im.manifest))
	}
}
