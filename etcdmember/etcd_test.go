package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"knode.dev/knode/pki"
)

// The real etcd (the payload's version, embedded in the test), three members
// in this process, TLS with client certificates as in a cluster.

func freeURL(t *testing.T, scheme string) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: scheme, Host: l.Addr().String()}
}

// writeCreds writes the CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
func writeCreds(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	c, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Issue(c, pki.CertSpec{CommonName: "etcd", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true, Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cli, err := pki.Issue(c, pki.CertSpec{CommonName: "kube-apiserver-etcd-client", Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca.crt": c.CertPEM, "srv.crt": srv.CertPEM, "srv.key": srv.KeyPEM, "cli.crt": cli.CertPEM, "cli.key": cli.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	return p("ca.crt"), p("srv.crt"), p("srv.key"), p("cli.crt"), p("cli.key")
}

type testEtcd struct {
	members []*embed.Etcd
	configs []*embed.Config
	stop    []func()
	clients []string
	cfg     Config
}

func startEtcd(t *testing.T, n int) *testEtcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	dir := t.TempDir()
	ca, sc, sk, cc, ck := writeCreds(t, dir)
	var peers, clients []url.URL
	var initial []string
	for i := range n {
		peers, clients = append(peers, freeURL(t, "http")), append(clients, freeURL(t, "https"))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i].String()))
	}
	te := &testEtcd{}
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = fmt.Sprintf("m%d", i), filepath.Join(dir, fmt.Sprintf("m%d", i))
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peers[i]}, []url.URL{peers[i]}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clients[i]}, []url.URL{clients[i]}
		cfg.InitialCluster, cfg.InitialClusterToken = strings.Join(initial, ","), "test"
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: sc, KeyFile: sk, TrustedCAFile: ca, ClientCertAuth: true}
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop := sync.OnceFunc(e.Close)
		t.Cleanup(stop)
		te.members, te.configs = append(te.members, e), append(te.configs, cfg)
		te.stop = append(te.stop, stop)
		te.clients = append(te.clients, clients[i].String())
	}
	for _, e := range te.members {
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			t.Fatal("etcd not ready after 30 s")
		}
	}
	// m0 first, then the others, as a master lists its own member first.
	te.cfg = Config{Endpoints: te.clients, CAFile: ca, CertFile: cc, KeyFile: ck}
	return te
}

func TestAgainstEtcd(t *testing.T) {
	te := startEtcd(t, 3)
	ctx := context.Background()
	cli, err := Dial(te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ms, err := cli.List(ctx)
	if err != nil || len(ms) != 3 {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	for _, m := range ms {
		if !m.Healthy {
			t.Fatalf("member %s not healthy: %+v", m.Name, ms)
		}
	}

	te.stop[2]() // m2 dies
	ms, err = cli.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := Find(ms, "m1", "")
	m2, ok := Find(ms, "m2", "")
	if !ok || m2.Healthy || !m1.Healthy {
		t.Fatalf("after m2 stopped: %+v", ms)
	}
	if err := CheckRemove(ms, m1.ID); !errors.Is(err, ErrQuorum) {
		t.Errorf("removing healthy m1 with m2 dead: %v, want ErrQuorum", err)
	}
	if err := CheckRemove(ms, m2.ID); err != nil {
		t.Fatalf("removing dead m2: %v", err)
	}
	if err := cli.Remove(ctx, m2.ID); err != nil {
		t.Fatal(err)
	}
	if ms, err = cli.List(ctx); err != nil || len(ms) != 2 {
		t.Fatalf("after the removal: %+v, %v", ms, err)
	}

	snaps := filepath.Join(t.TempDir(), "snapshots")
	p, err := cli.Save(ctx, snaps, Manual, "m0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot %s: %v %v", p, fi, err)
	}
	if files, err := List(snaps); err != nil || len(files) != 1 || files[0].Path != p || files[0].Node != "m0" {
		t.Fatalf("List = %+v, %v", files, err)
	}

	// A member removes itself through its own endpoint, as a reset master does,
	// right after the membership changed (etcd first answers "unhealthy
	// cluster": Remove waits that out).
	m0, _ := Find(ms, "m0", "")
	if err := CheckRemove(ms, m0.ID); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := cli.Remove(rctx, m0.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("m0 removed itself after %s", time.Since(start))
	other, err := Dial(Config{Endpoints: te.clients[1:2], CAFile: te.cfg.CAFile, CertFile: te.cfg.CertFile, KeyFile: te.cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ms, err := other.List(ctx); err != nil || len(ms) != 1 || ms[0].Name != "m1" {
		t.Fatalf("after m0 left: %+v, %v", ms, err)
	}

}

// A master joins as kubeadm's etcd helper does: add by peer URL, then read
// the membership back, serializably, while the new member has not started.
func TestAddAgainstEtcd(t *testing.T) {
	te := startEtcd(t, 3)
	ctx := context.Background()
	cli, err := Dial(Config{Endpoints: te.clients[:1], CAFile: te.cfg.CAFile, CertFile: te.cfg.CertFile, KeyFile: te.cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ju := freeURL(t, "https")
	joiner := ju.String()
	// etcd refuses additions ("unhealthy cluster") until its leader has
	// known a quorum active for 5 s: the caller retries, as hostprep does.
	deadline := time.Now().Add(20 * time.Second)
	for err := cli.Add(ctx, joiner); err != nil; err = cli.Add(ctx, joiner) {
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Added again (the first answer lost): done, not an error.
	if err := cli.Add(ctx, joiner); err != nil {
		t.Fatalf("adding %s again: %v", joiner, err)
	}
	te.stop[2]() // 2 of 4 members run: no quorum until the joiner starts
	ms, err := cli.Membership(ctx)
	if err != nil {
		t.Fatalf("a serializable member list without quorum: %v", err)
	}
	if len(ms) != 4 {
		t.Fatalf("membership %+v, want 4 members", ms)
	}
	if m, ok := Find(ms, "", joiner); !ok || m.Name != "" || m.Learner {
		t.Fatalf("the joiner %s in %+v: %+v %v, want an unnamed voting member", joiner, ms, m, ok)
	}
	if _, ok := Find(ms, "m1", ""); !ok {
		t.Fatalf("m1 not in %+v", ms)
	}
	// A further member would leave fewer started members than a quorum.
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	fifth := freeURL(t, "https")
	if err := cli.Add(actx, fifth.String()); err == nil || !strings.Contains(err.Error(), "etcd member add") {
		t.Fatalf("adding a fifth member with two of four started: %v, want etcd's refusal", err)
	}
}

// A snapshot saved from a running member passes VerifySnapshot; the same
// bytes with one flipped, a truncated copy and another file do not.
func TestVerifySnapshot(t *testing.T) {
	te := startEtcd(t, 1)
	ctx := context.Background()
	cli, err := Dial(te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.cli.Put(ctx, "/registry/configmaps/default/x", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := cli.Healthy(ctx); err != nil || n != 1 {
		t.Fatalf("Healthy = %d, %v", n, err)
	}
	if id, err := cli.ClusterID(ctx); err != nil || id == 0 {
		t.Fatalf("ClusterID = %x, %v", id, err)
	}
	dir := t.TempDir()
	p, err := cli.Save(ctx, dir, Manual, "m0", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	chk, err := VerifySnapshot(p)
	if err != nil || chk.Size == 0 || len(chk.SHA256) != 64 {
		t.Fatalf("VerifySnapshot(saved) = %+v, %v", chk, err)
	}
	data, _ := os.ReadFile(p)
	bad := filepath.Join(dir, "bad.db")
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 1
	os.WriteFile(bad, flipped, 0o600)
	if _, err := VerifySnapshot(bad); !errors.Is(err, ErrChecksum) {
		t.Errorf("one byte flipped: %v, want ErrChecksum", err)
	}
	os.WriteFile(bad, data[:len(data)-512], 0o600)
	if _, err := VerifySnapshot(bad); !errors.Is(err, ErrChecksum) {
		t.Errorf("truncated by a page: %v, want ErrChecksum", err)
	}
	os.WriteFile(bad, data[:len(data)-snapshotSuffix], 0o600) // the database without its hash
	if _, err := VerifySnapshot(bad); !errors.Is(err, ErrNotSnapshot) {
		t.Errorf("db without hash: %v, want ErrNotSnapshot", err)
	}
	other := append(make([]byte, 4096), make([]byte, snapshotSuffix)...)
	os.WriteFile(bad, other, 0o600)
	if _, err := VerifySnapshot(bad); !errors.Is(err, ErrNotSnapshot) {
		t.Errorf("zeros of a snapshot's size: %v, want ErrNotSnapshot", err)
	}
	if _, err := VerifySnapshot(dir); !errors.Is(err, ErrNotSnapshot) {
		t.Errorf("a directory: %v, want ErrNotSnapshot", err)
	}
	if _, err := VerifySnapshot(filepath.Join(dir, "none.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want ErrNotExist", err)
	}
}

// With quorum lost (two of three members gone for good), the survivor still
// hands out a snapshot of its own data, which is what the README's recovery
// starts from; it is not healthy.
func TestSnapshotWithoutQuorum(t *testing.T) {
	te := startEtcd(t, 3)
	ctx := context.Background()
	cli, err := Dial(Config{Endpoints: te.clients[:1], CAFile: te.cfg.CAFile, CertFile: te.cfg.CertFile, KeyFile: te.cfg.KeyFile, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.cli.Put(ctx, "/registry/k", "v"); err != nil {
		t.Fatal(err)
	}
	te.stop[1]()
	te.stop[2]()
	if n, err := cli.Healthy(ctx); err == nil {
		t.Errorf("healthy with %d members, two of them gone", n)
	}
	p, err := cli.Save(ctx, t.TempDir(), Manual, "m0", time.Now())
	if err != nil {
		t.Fatalf("snapshot without quorum: %v", err)
	}
	if _, err := VerifySnapshot(p); err != nil {
		t.Fatal(err)
	}
}

// A member whose node changed address: its peer URL is updated through the
// other members while it is down, then it starts again from its data with
// the new URL only, and the cluster has three healthy members again.
func TestUpdateAgainstEtcd(t *testing.T) {
	te := startEtcd(t, 3)
	ctx := context.Background()
	cli, err := Dial(Config{Endpoints: te.clients[:2], CAFile: te.cfg.CAFile, CertFile: te.cfg.CertFile, KeyFile: te.cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	old := te.configs[2].AdvertisePeerUrls[0].String()
	te.stop[2]()
	moved := freeURL(t, "http")
	if err := cli.Update(ctx, "m2", old, moved.String()); err != nil {
		t.Fatal(err)
	}
	if err := cli.Update(ctx, "m2", old, moved.String()); err != nil {
		t.Fatalf("the same update again: %v, want none", err)
	}
	if err := cli.Update(ctx, "m9", "http://127.0.0.1:1", moved.String()+"9"); err == nil || !strings.Contains(err.Error(), "no such member") {
		t.Fatalf("update of an unknown member: %v", err)
	}
	ms, err := cli.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := Find(ms, "m2", ""); !ok || len(m.PeerURLs) != 1 || m.PeerURLs[0] != moved.String() {
		t.Fatalf("m2 after the update: %+v", ms)
	}
	cfg := te.configs[2]
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{moved}, []url.URL{moved}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("m2 not ready at its new peer URL after 30 s")
	}
	all, err := Dial(te.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ms, err := all.List(ctx)
		healthy := 0
		for _, m := range ms {
			if m.Healthy {
				healthy++
			}
		}
		if err == nil && healthy == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members after m2 moved: %+v, %v", ms, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
