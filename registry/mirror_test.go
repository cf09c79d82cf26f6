package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/pki"
)

// testPeers is the cluster as a mirror sees it, fixed by the test.
type testPeers struct {
	holders map[digest.Digest][]Peer
	latest  map[string]Image
}

func (p testPeers) Holders(d digest.Digest) []Peer  { return slices.Clone(p.holders[d]) }
func (p testPeers) Latest(ref string) (Image, bool) { im, ok := p.latest[ref]; return im, ok }
func members(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
func nodeTLS(t testing.TB, ca *pki.CA, name string, addr netip.Addr) PeerTLS {
	t.Helper()
	dir := t.TempDir()
	write := func(n string, b []byte) string {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv, err := pki.Issue(ca, pki.KubeletServing(name, addr), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cli, err := pki.Issue(ca, pki.KubeletClient(name), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return PeerTLS{CA: write("ca.crt", ca.CertPEM), ServingCert: write("s.crt", srv.CertPEM), ServingKey: write("s.key", srv.KeyPEM),
		ClientCert: write("c.crt", cli.CertPEM), ClientKey: write("c.key", cli.KeyPEM)}
}

// servePeer runs h with the node's TLS on addr:port.
func servePeer(t testing.TB, addr netip.Addr, port int, pt PeerTLS, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		t.Skipf("listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: h, TLSConfig: pt.ServerConfig(), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	t.Cleanup(func() { srv.Close() })
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cutAfter serves h but cuts every blob body after n bytes: a peer that
// dies mid-transfer.
func cutAfter(n int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&cutWriter{ResponseWriter: w, left: n}, r)
	})
}

type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > c.left {
		c.ResponseWriter.Write(b[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(b))
	return c.ResponseWriter.Write(b)
}

// A node that holds nothing pulls an image through its mirror: the tag is
// resolved from the announcements, every blob comes from peers, a peer
// dying mid-blob is replaced by the next holder from the byte it stopped
// at. The mirror keeps no copy: containerd, its client, stores what it
// pulled (so the node's content store is all it has on disk).
func TestMirrorPullsFromPeers(t *testing.T) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	im := newTestImage(t, "example.com/app:v1", string(make([]byte, 3<<20)), "small layer")
	aAddr, cAddr := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	a, c := storeWith(t, im), storeWith(t, im)
	aTLS, cTLS, bTLS := nodeTLS(t, ca, "a", aAddr), nodeTLS(t, ca, "c", cAddr), nodeTLS(t, ca, "b", netip.MustParseAddr("127.0.0.4"))
	aServed := PeerHandler(a, members("b"), quiet())
	servePeer(t, aAddr, port, aTLS, aServed)
	servePeer(t, cAddr, port, cTLS, cutAfter(1<<20, PeerHandler(c, members("b"), quiet())))

	refs, _ := a.Images()
	peers := testPeers{holders: map[digest.Digest][]Peer{}, latest: map[string]Image{refs[0].Ref: refs[0]}}
	for d := range im.blobs {
		// c, which dies after 1 MiB of any body, is asked first.
		peers.holders[d] = []Peer{{"c", cAddr}, {"a", aAddr}}
	}
	b, bCtrd := newStore(t)
	m := NewMirror(b, peers, bTLS.Client(), port, quiet())
	local := httptest.NewServer(Handler(m, quiet()))
	defer local.Close()

	res, body, err := get(t, "GET", local.URL+"/v2/app/manifests/v1?ns=example.com")
	if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != im.manifest {
		t.Fatalf("manifest through the mirror: %v %v", res, err)
	}
	for _, l := range im.layers {
		res, body, err := get(t, "GET", local.URL+"/v2/app/blobs/"+l.String()+"?ns=example.com")
		if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != l {
			t.Fatalf("layer %s through the mirror: %v %v", l, res, err)
		}
	}
	res, _, _ = get(t, "GET", local.URL+"/v2/app/blobs/"+im.config.String())
	if res.StatusCode != 200 {
		t.Fatalf("config: %s", res.Status)
	}
	if bCtrd.Blobs() != 0 {
		t.Errorf("the mirror wrote %d blobs itself", bCtrd.Blobs())
	}
	from := m.Fetched()
	t.Logf("fetched from c (cut after 1 MiB per body): %d bytes, from a: %d; a served %v", from["c"], from["a"], aServed.To())
	if from["c"] == 0 || from["a"] == 0 || from["a"]+from["c"] < 3<<20 {
		t.Errorf("fetched %v: want bytes from both holders", from)
	}
	if from["a"] != aServed.To()["b"] {
		t.Errorf("a served b %d bytes, b counted %d", aServed.To()["b"], from["a"])
	}
	assertNoStaging(t, b)
}

// A peer that serves wrong bytes for a digest: the transfer fails before
// the client has the whole blob, the peer is not asked for that digest
// again, and the next pull comes from an honest holder.
func TestMirrorRefusesPoison(t *testing.T) {
	ca, _ := pki.NewCA("test", time.Now())
	port := freePort(t)
	im := newTestImage(t, "app:v1", "the real layer content")
	evil := newTestImage(t, "app:v1", "the real layer CONTENT") // same size, other bytes
	honestAddr, evilAddr := netip.MustParseAddr("127.0.0.5"), netip.MustParseAddr("127.0.0.6")
	honest := storeWith(t, im)
	servePeer(t, honestAddr, port, nodeTLS(t, ca, "honest", honestAddr), PeerHandler(honest, members("b"), quiet()))
	// The evil node's endpoint does not verify what it serves.
	servePeer(t, evilAddr, port, nodeTLS(t, ca, "evil", evilAddr), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(evil.blobs[evil.layers[0]]) // its own layer under the real layer's name
	}))
	b, _ := newStore(t)
	client := nodeTLS(t, ca, "b", netip.MustParseAddr("127.0.0.7")).Client()
	peers := testPeers{holders: map[digest.Digest][]Peer{im.layers[0]: {{"evil", evilAddr}, {"honest", honestAddr}}}}
	m := NewMirror(b, peers, client, port, quiet())
	local := httptest.NewServer(Handler(m, quiet()))
	defer local.Close()
	u := local.URL + "/v2/library/app/blobs/" + im.layers[0].String()
	_, body, err := get(t, "GET", u)
	if err == nil && digest.FromBytes(body) != im.layers[0] && len(body) == len(im.blobs[im.layers[0]]) {
		t.Fatal("poisoned blob served whole")
	}
	res, body, err := get(t, "GET", u)
	if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != im.layers[0] {
		t.Fatalf("second pull: %v %v", res, err)
	}
	if from := m.Fetched(); from["honest"] != int64(len(body)) {
		t.Errorf("fetched %v: the second pull did not come from the honest holder alone", from)
	}
}

// Only members read a node's images: no client certificate, one from
// another CA, or a member's certificate for a name no longer bound, are
// all refused.
func TestPeerEndpointMembersOnly(t *testing.T) {
	ca, _ := pki.NewCA("test", time.Now())
	other, _ := pki.NewCA("other", time.Now())
	port := freePort(t)
	addr := netip.MustParseAddr("127.0.0.8")
	im := newTestImage(t, "app:v1", "secret layer")
	servePeer(t, addr, port, nodeTLS(t, ca, "a", addr), PeerHandler(storeWith(t, im), members("b"), quiet()))
	u := "https://" + netip.AddrPortFrom(addr, uint16(port)).String() + "/v2/x/blobs/" + im.layers[0].String()
	try := func(pt PeerTLS) (int, error) {
		res, err := pt.Client().Get(u)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	if code, err := try(nodeTLS(t, ca, "b", addr)); err != nil || code != 200 {
		t.Fatalf("member: %d %v", code, err)
	}
	if code, err := try(nodeTLS(t, ca, "removed", addr)); err != nil || code != http.StatusForbidden {
		t.Errorf("a removed node: %d %v", code, err)
	}
	foreign := nodeTLS(t, other, "b", addr)
	foreign.CA = nodeTLS(t, ca, "b", addr).CA // it trusts the cluster's server
	if code, err := try(foreign); err == nil {
		t.Errorf("a certificate from another CA got %d", code)
	}
	anon := nodeTLS(t, ca, "b", addr)
	anon.ClientCert = "/nonexistent"
	if code, err := try(anon); err == nil {
		t.Errorf("no client certificate got %d", code)
	}
	// kube-proxy's certificate is the cluster's but not a node's.
	kp, _ := pki.Issue(ca, pki.CertSpec{CommonName: "system:kube-proxy", Client: true}, time.Now())
	pt := nodeTLS(t, ca, "b", addr)
	os.WriteFile(pt.ClientCert, kp.CertPEM, 0o600)
	os.WriteFile(pt.ClientKey, kp.KeyPEM, 0o600)
	if code, err := try(pt); err != nil || code != http.StatusForbidden {
		t.Errorf("kube-proxy's certificate: %d %v", code, err)
	}
}

// The client trusts only a server the cluster CA signed for the address it
// dialled: an impostor with another CA's certificate, or a member's
// certificate presented at another member's address, is refused.
func TestPeerClientVerifiesServer(t *testing.T) {
	ca, _ := pki.NewCA("test", time.Now())
	other, _ := pki.NewCA("other", time.Now())
	port := freePort(t)
	im := newTestImage(t, "app:v1", "layer")
	st := storeWith(t, im)
	good, impostor, moved := netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("127.0.0.10"), netip.MustParseAddr("127.0.0.11")
	servePeer(t, good, port, nodeTLS(t, ca, "a", good), PeerHandler(st, members("b"), quiet()))
	servePeer(t, impostor, port, nodeTLS(t, other, "a", impostor), PeerHandler(st, members("b"), quiet()))
	servePeer(t, moved, port, nodeTLS(t, ca, "a", good), PeerHandler(st, members("b"), quiet())) // cert names .9
	client := nodeTLS(t, ca, "b", good).Client()
	for addr, ok := range map[netip.Addr]bool{good: true, impostor: false, moved: false} {
		res, err := client.Get("https://" + netip.AddrPortFrom(addr, uint16(port)).String() + "/v2/x/blobs/" + im.layers[0].String())
		if err == nil {
			res.Body.Close()
		}
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want success %v", addr, err, ok)
		}
	}
}

// A peer that stops sending mid-blob is given up after the stall timeout
// and the pull goes on at the next holder.
func TestMirrorLeavesAStalledPeer(t *testing.T) {
	ca, _ := pki.NewCA("test", time.Now())
	port := freePort(t)
	im := newTestImage(t, "app:v1", string(make([]byte, 1<<20)))
	honestAddr, stuckAddr := netip.MustParseAddr("127.0.0.12"), netip.MustParseAddr("127.0.0.13")
	servePeer(t, honestAddr, port, nodeTLS(t, ca, "honest", honestAddr), PeerHandler(storeWith(t, im), members("b"), quiet()))
	release := make(chan struct{})
	defer close(release)
	inner := PeerHandler(storeWith(t, im), members("b"), quiet())
	servePeer(t, stuckAddr, port, nodeTLS(t, ca, "stuck", stuckAddr), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(&stallWriter{ResponseWriter: w, left: 100000, release: release}, r)
	}))
	b, _ := newStore(t)
	peers := testPeers{holders: map[digest.Digest][]Peer{im.layers[0]: {{"stuck", stuckAddr}, {"honest", honestAddr}}}}
	m := NewMirror(b, peers, nodeTLS(t, ca, "b", netip.MustParseAddr("127.0.0.14")).Client(), port, quiet())
	m.stall = 300 * time.Millisecond
	local := httptest.NewServer(Handler(m, quiet()))
	defer local.Close()
	start := time.Now()
	res, body, err := get(t, "GET", local.URL+"/v2/library/app/blobs/"+im.layers[0].String())
	if err != nil || res.StatusCode != 200 || digest.FromBytes(body) != im.layers[0] {
		t.Fatalf("pull past a stalled peer: %v %v", res, err)
	}
	if from := m.Fetched(); from["stuck"] == 0 || from["honest"] == 0 {
		t.Errorf("fetched %v", from)
	}
	t.Logf("pull with a peer stalled after 100 kB: %s", time.Since(start).Round(time.Millisecond))
}

// stallWriter sends left bytes, then hangs until release.
type stallWriter struct {
	http.ResponseWriter
	left    int
	release chan struct{}
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if len(b) > s.left {
		s.ResponseWriter.Write(b[:s.left])
		s.ResponseWriter.(http.Flusher).Flush()
		<-s.release
		return 0, io.ErrClosedPipe
	}
	s.left -= len(b)
	return s.ResponseWriter.Write(b)
}

// A tag resolves to the later of the masters' latest import and this
// node's own import; a tag only containerd's pull knows is not answered.
func TestMirrorResolve(t *testing.T) {
	ctx := context.Background()
	own := newTestImage(t, "app:v1", "imported here")
	s, ctrd := storeWithCtrd(t, own)
	imgs, _ := s.Images()
	mine := imgs[0]
	other, older := digest.Digest("sha256:"+strings.Repeat("a", 64)), digest.Digest("sha256:"+strings.Repeat("b", 64))
	pulled := ctrd.Put([]byte(`{"schemaVersion":2,"config":{},"layers":[]}`))
	ctrd.SetImage("docker.io/library/nginx:latest", pulled, 40)
	for _, tc := range []struct {
		name   string
		latest map[string]Image
		ref    string
		want   digest.Digest
	}{
		{"own import, no master's", nil, mine.Ref, mine.Digest},
		{"a master's later import", map[string]Image{mine.Ref: {Ref: mine.Ref, Digest: other, Imported: mine.Imported + 1}}, mine.Ref, other},
		{"a master's earlier import", map[string]Image{mine.Ref: {Ref: mine.Ref, Digest: older, Imported: mine.Imported - 1}}, mine.Ref, mine.Digest},
		{"a tag containerd pulled", nil, "docker.io/library/nginx:latest", ""},
	} {
		m := NewMirror(s, testPeers{latest: tc.latest}, nil, 0, quiet())
		got, err := m.Resolve(ctx, tc.ref)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %s %v, want %s", tc.name, got, err, tc.want)
		}
	}
}
