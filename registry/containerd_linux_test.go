//go:build linux

package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// realContainerd starts the payload's containerd (release/_build, as `make
// payload` stages it, or $KNODE_CONTAINERD) under a temporary root with its
// CRI plugin off, and returns a store over it. It skips without root or
// without a containerd binary.
func realContainerd(t *testing.T) (*Store, *Containerd) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting containerd needs root")
	}
	bin := os.Getenv("KNODE_CONTAINERD")
	if bin == "" {
		bin, _ = filepath.Abs("../release/_build/root/bin/containerd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no containerd binary at %s (run `make payload`, or set KNODE_CONTAINERD)", bin)
	}
	dir, err := os.MkdirTemp("", "kctrd") // the socket's path must be short
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("containerd's log:\n%s", b)
		}
		os.RemoveAll(dir)
	})
	cs, err := DialContainerd(sock, CRINamespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err = cs.Records(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer: %v", err)
		}
	}
	st, err := OpenStore(t.TempDir(), cs)
	if err != nil {
		t.Fatal(err)
	}
	return st, cs
}

// collect makes containerd collect garbage now: a synchronous delete of
// a record runs its whole collector.
func collect(t *testing.T, cs *Containerd) {
	t.Helper()
	ctx := context.Background()
	if err := cs.SetRecord(ctx, "knode.test/gc:now", Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json",
		Digest: digest.FromString("nothing"), Size: 7}); err != nil {
		t.Fatal(err)
	}
	if err := cs.DeleteRecord(ctx, "knode.test/gc:now"); err != nil {
		t.Fatal(err)
	}
}

// Against a real containerd: an import survives its garbage collector
// whole (the lease, then the record and the child labels hold it, also on
// a manifest containerd held already without them); the
// distribution endpoint serves it from containerd's content store; a
// re-import moves the name and the collector removes the old layer; a
// corrupt archive leaves nothing; removal leaves nothing.
func TestRealContainerd(t *testing.T) {
	st, cs := realContainerd(t)
	ctx := context.Background()
	a := newTestImage(t, "example.com/app:v1", "base layer", "app one")
	// Its manifest is there already, unlabelled (another writer's, held by its lease).
	pre, err := cs.newLease(ctx, "test-pre", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mb := a.blobs[a.manifest]
	if err := pre.write(ctx, bytes.NewReader(mb), a.manifest, int64(len(mb)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(ctx, writeTemp(t, "a.tar", tarOf(t, a.ociFiles(), "gzip")), time.Unix(10, 0)); err != nil {
		t.Fatal(err)
	}
	if err := pre.release(ctx); err != nil {
		t.Fatal(err)
	}
	collect(t, cs)
	held, names, err := st.Held(ctx)
	if err != nil || len(held) != 4 || len(names) != 1 {
		t.Fatalf("after containerd's collector: held %v names %v (%v)", held, names, err)
	}
	rec, err := cs.Record(ctx, "example.com/app:v1")
	if err != nil || rec.Target.Digest != a.manifest {
		t.Fatalf("containerd's record: %+v %v", rec, err)
	}

	srv := httptest.NewServer(Handler(st, quiet()))
	defer srv.Close()
	res, body, err := get(t, "GET", srv.URL+"/v2/app/manifests/v1?ns=example.com")
	if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != a.manifest {
		t.Fatalf("manifest from containerd: %v %v", res, err)
	}
	for _, l := range a.layers {
		res, body, err := get(t, "GET", srv.URL+"/v2/app/blobs/"+l.String())
		if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != l {
			t.Fatalf("layer %s from containerd: %v %v", l, res, err)
		}
	}

	b := newTestImage(t, "example.com/app:v1", "base layer", "app two")
	if _, err := st.Import(ctx, writeTemp(t, "b.tar", tarOf(t, b.dockerFiles(), "zstd")), time.Unix(20, 0)); err != nil {
		t.Fatal(err)
	}
	collect(t, cs)
	if st.Has(ctx, a.layers[1]) || !st.Has(ctx, b.layers[1]) || !st.Has(ctx, a.layers[0]) {
		t.Error("after a re-import the collector should remove only the old image's own layer")
	}

	bad := b.ociFiles()
	bad["blobs/sha256/"+b.layers[1].Encoded()] = []byte("tampered")
	before, _ := cs.Blobs(ctx)
	if _, err := st.Import(ctx, writeTemp(t, "bad.tar", tarOf(t, bad, "")), time.Now()); !errors.Is(err, ErrArchive) {
		t.Fatalf("corrupt archive: %v", err)
	}
	if after, _ := cs.Blobs(ctx); len(after) != len(before) {
		t.Errorf("a corrupt archive changed containerd's content: %d blobs, then %d", len(before), len(after))
	}

	// The alias containerd's CRI adds when it unpacks an image goes with it.
	rec, _ = cs.Record(ctx, "example.com/app:v1")
	if err := cs.SetRecord(ctx, "example.com/app@"+rec.Target.Digest.String(), rec.Target); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Remove(ctx, []string{"example.com/app:v1"}); err != nil {
		t.Fatal(err)
	}
	if left, _ := cs.Blobs(ctx); len(left) != 0 {
		t.Errorf("after removal containerd holds %v", slices.Collect(maps.Keys(left)))
	}
	if recs, _ := cs.Records(ctx); len(recs) != 0 {
		t.Errorf("records left: %v", recs)
	}
}
