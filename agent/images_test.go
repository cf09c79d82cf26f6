package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
	"knode.dev/knode/registry"
	"knode.dev/knode/registry/registrytest"
)

// imagesCluster is a cluster of agents running image distribution on
// loopback, each over a fake containerd of its own: one peer port for all
// (only the first node, whose address all decisions share, can listen on
// it: it is the one peers fetch from).
func imagesCluster(t *testing.T) (*testCluster, map[string]*registrytest.Containerd, *sync.Map, func(name string)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var root string
	ctrds := map[string]*registrytest.Containerd{}
	unpacked := &sync.Map{} // node -> the last image its agent had containerd unpack
	opts := func(name string, o *Options) {
		dir := filepath.Join(root, "tls-"+name)
		if ctrds[name] == nil {
			ctrds[name] = registrytest.StartContainerd(t)
		}
		o.Images = &ImagesOptions{Store: o.Dir.Path("registry"), Containerd: ctrds[name].Socket, Port: port, Local: netip.MustParseAddrPort("127.0.0.1:0"),
			Unpack: func(_ context.Context, ref string) error { unpacked.Store(name, ref); return nil },
			TLS:    registry.PeerTLS{CA: dir + "/ca.crt", ServingCert: dir + "/s.crt", ServingKey: dir + "/s.key", ClientCert: dir + "/c.crt", ClientKey: dir + "/c.key"}}
	}
	root = t.TempDir()
	tc := newTestClusterWith(t, testPlan(1), gossip.Fast, opts)
	// The kubelet's certificates, as the PKI phase would write them.
	certs := func(name string) {
		t.Helper()
		sec, _, err := tc.dir("n00").LoadSecrets()
		if err != nil {
			t.Fatal(err)
		}
		ca, err := pki.LoadCA(tc.live()["n00"].state.Cluster().CACert, sec.CAKey)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "tls-"+name)
		os.MkdirAll(dir, 0o700)
		srv, _ := pki.Issue(ca, pki.KubeletServing(name, netip.MustParseAddr("127.0.0.1")), time.Now())
		cli, _ := pki.Issue(ca, pki.KubeletClient(name), time.Now())
		for f, b := range map[string][]byte{"ca.crt": ca.CertPEM, "s.crt": srv.CertPEM, "s.key": srv.KeyPEM, "c.crt": cli.CertPEM, "c.key": cli.KeyPEM} {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	certs("n00")
	// n00 takes the shared port first: the others then fail to listen.
	n00 := tc.live()["n00"]
	waitFor(t, 10*time.Second, "n00's peer endpoint", func() bool {
		n00.images.mu.Lock()
		defer n00.images.mu.Unlock()
		return n00.images.peerAddr.IsValid()
	})
	return tc, ctrds, unpacked, certs
}

// An image dropped into one node's import directory is written into that
// node's containerd and announced to every node, pulled by another node's
// mirror from it (from its containerd, over mutual TLS), then held and
// announced by that node too once its containerd stored the pull; removing
// it stops the announcement; a node that leaves withdraws its announcement.
func TestImagesImportedOnOneNodePulledOnAnother(t *testing.T) {
	tc, ctrds, unpacked, certs := imagesCluster(t)
	certs("n01")
	certs("n02")
	tc.join("n01", "n00")
	tc.join("n02", "n00")
	tc.waitConverged(10*time.Second, 3)
	n00, n01, n02 := tc.live()["n00"], tc.live()["n01"], tc.live()["n02"]

	im := registrytest.NewImage("example.com/team/app:v1", []string{"/app"},
		[]registrytest.File{{Name: "app", Mode: 0o755, Data: make([]byte, 1<<20)}}, []registrytest.File{{Name: "etc/motd", Data: []byte("hi")}})
	b, err := registrytest.Tar(im.OCIFiles(), "zstd")
	if err != nil {
		t.Fatal(err)
	}
	drop := filepath.Join(n00.images.store.Root(), registry.ImportDir, "app.tar.zst")
	if err := os.WriteFile(drop+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(drop+".tmp", time.Now().Add(-time.Minute), time.Now().Add(-time.Minute))
	os.Rename(drop+".tmp", drop)

	holders := func(a *Agent, ref string) []string {
		for _, h := range a.Images().Images {
			if h.Ref == ref {
				return h.Nodes
			}
		}
		return nil
	}
	const ref = "example.com/team/app:v1"
	waitFor(t, 10*time.Second, "n02 sees n00 holding the image", func() bool { return slices.Equal(holders(n02, ref), []string{"n00"}) })
	if got, _ := unpacked.Load("n00"); got != ref {
		t.Errorf("n00 had containerd unpack %v after the import, want %s", got, ref)
	}
	if got := n02.Images().Images[0].Digest; got != im.Manifest.String() {
		t.Fatalf("n02 resolves %s to %s, want %s", ref, got, im.Manifest)
	}

	// n01 pulls through its mirror, as its containerd would.
	mirror := httptest.NewServer(registry.Handler(n01.images.mirror, slog.New(slog.DiscardHandler)))
	defer mirror.Close()
	get := func(path string) (int, []byte) {
		res, err := http.Get(mirror.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, body
	}
	code, body := get("/v2/team/app/manifests/v1?ns=example.com")
	if code != 200 || digest.FromBytes(body) != im.Manifest {
		t.Fatalf("manifest through n01's mirror: %d %s", code, body)
	}
	var pulled [][]byte
	for _, d := range append([]digest.Digest{im.Config}, im.Layers...) {
		code, body := get("/v2/team/app/blobs/" + d.String() + "?ns=example.com")
		if code != 200 || digest.FromBytes(body) != d {
			t.Fatalf("blob %s through n01's mirror: %d", d, code)
		}
		pulled = append(pulled, body)
	}
	if ctrds["n01"].Blobs() != 0 {
		t.Fatalf("n01's mirror wrote into containerd itself: %d blobs", ctrds["n01"].Blobs())
	}
	for _, b := range append(pulled, im.Blobs[im.Manifest]) {
		ctrds["n01"].Put(b) // n01's containerd stores what it pulled
	}
	ctrds["n01"].SetImage(ref, im.Manifest, int64(len(im.Blobs[im.Manifest])))
	if code, _ := get("/v2/team/app/manifests/v2?ns=example.com"); code != 404 {
		t.Errorf("an unknown tag: %d, want 404 (containerd then asks the registry)", code)
	}
	waitFor(t, 10*time.Second, "n02 sees n01 holding the image too", func() bool {
		return slices.Equal(holders(n02, ref), []string{"n00", "n01"})
	})
	fetched, _ := n01.ImageStats()
	_, served := n00.ImageStats()
	t.Logf("n01 fetched %v, n00 served %v", fetched, served)
	if fetched["n00"] < 1<<20 || served["n01"] != fetched["n00"] {
		t.Errorf("n01 fetched %v, n00 served %v", fetched, served)
	}

	// A worker imports its own image under the same name, later: the
	// cluster keeps the master's (a worker does not name images for others),
	// while the worker's own mirror still answers from its store.
	evil := registrytest.NewImage(ref, []string{"/app"}, []registrytest.File{{Name: "app", Mode: 0o755, Data: []byte("not the app")}})
	eb, err := registrytest.Tar(evil.OCIFiles(), "")
	if err != nil {
		t.Fatal(err)
	}
	evilTar := filepath.Join(t.TempDir(), "evil.tar")
	if err := os.WriteFile(evilTar, eb, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n01.images.store.Import(context.Background(), evilTar, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n02 to hold n01's announcement of its own import", func() bool {
		for _, r := range n02.Snapshot().Images["n01"].Refs {
			if r.Ref == ref && fromRaw(r.Digest) == evil.Manifest {
				return true
			}
		}
		return false
	})
	if got, ok := (imagePeers{n02}).Latest(ref); !ok || got.Digest != im.Manifest {
		t.Errorf("after a worker's import n02 resolves %s to %v %v, want the master's %s", ref, got.Digest, ok, im.Manifest)
	}

	// A corrupt archive dropped in is refused and leaves nothing.
	bad := filepath.Join(n00.images.store.Root(), registry.ImportDir, "bad.tar")
	os.WriteFile(bad, b[:len(b)/2], 0o600)
	os.Chtimes(bad, time.Now().Add(-time.Minute), time.Now().Add(-time.Minute))
	time.Sleep(3 * n00.interval())
	if imgs, _ := n00.images.store.Images(); len(imgs) != 1 {
		t.Errorf("after a corrupt archive the store holds %v", imgs)
	}

	// n01 leaves: its announcement goes with it.
	if err := n01.Remove(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n02 no longer counts n01", func() bool { return slices.Equal(holders(n02, ref), []string{"n00"}) })
	// The record of its leave and the removal of its announcement may reach
	// n02 in separate rounds (seen once in a loaded run).
	waitFor(t, 10*time.Second, "n01's announcement gone from n02", func() bool {
		ann := n02.Snapshot().Images["n01"]
		return len(ann.Refs) == 0 && len(ann.Blobs) == 0
	})

	// n00 removes the image: its name and blobs leave its announcement,
	// and its containerd's collector removed the blobs.
	if _, err := n00.images.store.Remove(context.Background(), []string{ref}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n02 sees n00 holding nothing", func() bool {
		ann := n02.Snapshot().Images["n00"]
		return len(ann.Refs) == 0 && !gossip.BloomHas(ann.Blobs, raw(im.Layers[0]))
	})
	if ctrds["n00"].Has(im.Layers[0]) {
		t.Error("n00's containerd still holds the removed image's layer")
	}
}
