package assets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestStageLayoutAndContent(t *testing.T) {
	payload, m := synthetic(t)
	dir := t.TempDir()
	var progress strings.Builder
	s, err := StageFS(context.Background(), payload, dir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	// 3 files, 2 links, 1 image.
	if s.Written != 6 {
		t.Errorf("Written = %d, want 6", s.Written)
	}
	kube, err := os.ReadFile(s.Path("kubelet"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(kube), "kube multi-call") {
		t.Errorf("kubelet content = %.20q", kube)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin", "kubectl")); err != nil || target != "kube" {
		t.Errorf("bin/kubectl -> %q, %v; want a symlink to kube", target, err)
	}
	info, err := os.Stat(filepath.Join(dir, "bin", "cni", "bridge"))
	if err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("bin/cni/bridge: %v, %v; want mode 0755", info, err)
	}
	if got := s.ImagePath("pause"); got != filepath.Join(dir, "images", "pause.tar") {
		t.Errorf("ImagePath(pause) = %s", got)
	}
	if !intact(s.ImagePath("pause"), m.Images[0].Size, m.Images[0].SHA256) {
		t.Error("staged image differs from the manifest's record")
	}
	if s.ImageRef("pause") != "registry.k8s.io/pause:3.10.2" || s.Path("nope") != "" || s.CNIBinDir() != filepath.Join(dir, "bin", "cni") {
		t.Error("Staged helpers disagree with the manifest")
	}
	if !strings.Contains(progress.String(), "staged kube v1.0.0") {
		t.Errorf("progress lacks a line for kube:\n%s", progress.String())
	}
	assertNoTemporaries(t, dir)
}

func TestStageTwiceWritesNothing(t *testing.T) {
	payload, _ := synthetic(t)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := StageFS(ctx, payload, dir, nil); err != nil {
		t.Fatal(err)
	}
	// Older mtimes, so that a rewrite would show even on a coarse clock.
	past := time.Now().Add(-time.Hour)
	for _, rel := range []string{"bin/kube", "bin/pause", "bin/cni/bridge", "images/pause.tar", stampName} {
		if err := os.Chtimes(filepath.Join(dir, rel), past, past); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, os.DirFS(dir))
	s, err := StageFS(ctx, payload, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Written != 0 {
		t.Errorf("second Stage wrote %d items", s.Written)
	}
	if after := tree(t, os.DirFS(dir)); !reflect.DeepEqual(before, after) {
		t.Errorf("second Stage changed the data directory:\nbefore %v\nafter  %v", before, after)
	}
	// Without the stamp, every file is verified by hash and still nothing is rewritten.
	if err := os.Remove(filepath.Join(dir, stampName)); err != nil {
		t.Fatal(err)
	}
	s, err = StageFS(ctx, payload, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Written != 0 {
		t.Errorf("Stage without stamp rewrote %d intact items", s.Written)
	}
}

func TestStageRepairsDamagedFiles(t *testing.T) {
	payload, _ := synthetic(t)
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := StageFS(ctx, payload, dir, nil); err != nil {
		t.Fatal(err)
	}
	kube := filepath.Join(dir, "bin", "kube")
	if err := os.WriteFile(kube, []byte("truncated"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "bin", "kubelet")); err != nil {
		t.Fatal(err)
	}
	// bridge shares its blob with pause, which is intact and must not be rewritten.
	if err := os.Remove(filepath.Join(dir, "bin", "cni", "bridge")); err != nil {
		t.Fatal(err)
	}
	s, err := StageFS(ctx, payload, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Written != 3 {
		t.Errorf("Written = %d, want 3 (kube, bridge and the kubelet link)", s.Written)
	}
	if data, _ := os.ReadFile(kube); !strings.HasPrefix(string(data), "kube multi-call") {
		t.Error("bin/kube was not restored")
	}
}

func TestStageRefusesCorruptPayload(t *testing.T) {
	cases := map[string]func(fstest.MapFS, Manifest){
		"flipped byte": func(p fstest.MapFS, _ Manifest) {
			blob := append([]byte(nil), p["kube.zst"].Data...)
			blob[len(blob)/2] ^= 0xff
			p["kube.zst"] = &fstest.MapFile{Data: blob}
		},
		"truncated blob": func(p fstest.MapFS, _ Manifest) {
			blob := p["kube.zst"].Data
			p["kube.zst"] = &fstest.MapFile{Data: blob[:len(blob)/2]}
		},
		"empty blob": func(p fstest.MapFS, _ Manifest) {
			p["kube.zst"] = &fstest.MapFile{}
		},
		"wrong sha256": func(p fstest.MapFS, m Manifest) {
			m.Files[0].SHA256 = strings.Repeat("0", 64)
			setManifest(t, p, m)
		},
		"trailing data": func(p fstest.MapFS, m Manifest) {
			data := bytes.Repeat([]byte("kube multi-call binary "), 5000)
			short := data[:len(data)-1]
			sum := sha256.Sum256(short)
			m.Files[0].Size, m.Files[0].SHA256 = int64(len(short)), hex.EncodeToString(sum[:])
			setManifest(t, p, m)
		},
		"wrong size": func(p fstest.MapFS, m Manifest) {
			m.Files[0].Size--
			setManifest(t, p, m)
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			payload, m := synthetic(t)
			corrupt(payload, m)
			dir := t.TempDir()
			_, err := StageFS(context.Background(), payload, dir, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("StageFS = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), "kube") {
				t.Errorf("error %q does not name the file", err)
			}
			// With trailing data the file itself decoded intact (its sha256 matched) and may
			// stay; in every other case nothing unverified becomes visible.
			if _, err := os.Stat(filepath.Join(dir, "bin", "kube")); name != "trailing data" && !os.IsNotExist(err) {
				t.Errorf("bin/kube exists after a failed stage: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, stampName)); !os.IsNotExist(err) {
				t.Errorf("stamp written after a failed stage: %v", err)
			}
			assertNoTemporaries(t, dir)
		})
	}
}

func TestStageRemovesLeftoverTemporaries(t *testing.T) {
	payload, _ := synthetic(t)
	dir := t.TempDir()
	if _, err := StageFS(context.Background(), payload, dir, nil); err != nil {
		t.Fatal(err)
	}
	// What a stager killed mid-write leaves behind.
	for _, name := range []string{"bin/.kube.123.tmp", "bin/.kubelet.42.tmp", "images/.pause.tar.9.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := StageFS(context.Background(), payload, dir, nil); err != nil {
		t.Fatal(err)
	}
	assertNoTemporaries(t, dir)
}

func TestStageMissingBlob(t *testing.T) {
	payload, _ := synthetic(t)
	delete(payload, "small.zst")
	_, err := StageFS(context.Background(), payload, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "small.zst") {
		t.Fatalf("StageFS = %v, want an error naming small.zst", err)
	}
}

func TestNoPayload(t *testing.T) {
	payload := fstest.MapFS{"README.md": {Data: []byte("placeholder")}}
	dir := filepath.Join(t.TempDir(), "data")
	_, err := StageFS(context.Background(), payload, dir, nil)
	if !errors.Is(err, ErrNoPayload) {
		t.Fatalf("StageFS = %v, want ErrNoPayload", err)
	}
	if !strings.Contains(err.Error(), "make") {
		t.Errorf("ErrNoPayload does not say how to build one: %q", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("StageFS created the data directory without a payload")
	}
}

func TestEmbeddedManifest(t *testing.T) {
	// Holds with or without a release build: either a valid manifest or ErrNoPayload.
	m, err := ReadManifest()
	switch {
	case errors.Is(err, ErrNoPayload):
	case err != nil:
		t.Fatalf("ReadManifest = %v", err)
	case len(m.Files) == 0:
		t.Fatal("embedded manifest lists no files")
	}
}

func TestBadManifestIsRefused(t *testing.T) {
	payload, _ := synthetic(t)
	payload["manifest.json"] = &fstest.MapFile{Data: []byte(`{"schema": 99}`)}
	if _, err := StageFS(context.Background(), payload, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("StageFS = %v, want a schema error", err)
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	payload, _ := synthetic(t)
	dir := t.TempDir()
	unlock, err := lock(context.Background(), filepath.Join(dir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := StageFS(ctx, payload, dir, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("StageFS with the lock held = %v, want DeadlineExceeded", err)
	}
}

func assertNoTemporaries(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".link") {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
