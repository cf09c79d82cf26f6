package hostprep_test

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

const (
	restoreStamp = "20261129T160000Z"
	snapshotPath = "/var/lib/knode/snapshots/manual-b-20261129T150000Z.db"
	etcdutlPath  = "/var/lib/knode/bin/etcdutl"
)

// restoreFake is a master b whose etcd has data and whose control plane
// runs; etcdutl writes a restored member where it is told to.
func restoreFake(t *testing.T) (*hostpreptest.Host, *hostprep.Spec) {
	t.Helper()
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	s.DataDir = "/var/lib/knode"
	f.Files.WriteFile("/var/lib/etcd/member/snap/db", []byte("old"), 0o600)
	for _, m := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		f.Files.WriteFile(path.Join(hostprep.ManifestsDir, m+".yaml"), []byte(m), 0o600)
	}
	f.Exec.Effect = map[string]func([]string){etcdutlPath: func(args []string) {
		dir := args[slices.Index(args, "--data-dir")+1]
		f.Files.WriteFile(dir+"/member/snap/db", []byte("restored"), 0o600)
	}}
	return f, s
}

func readString(f *hostpreptest.Host, name string) string {
	b, err := f.Files.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestRestoreEtcd(t *testing.T) {
	f, s := restoreFake(t)
	r := hostprep.EtcdRestore{Snapshot: snapshotPath, Stamp: restoreStamp, Healthy: func(context.Context) error { return nil }}
	res, err := hostprep.RestoreEtcd(context.Background(), s, f.Host(), r, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := etcdutlPath + " snapshot restore " + snapshotPath + " --data-dir /var/lib/etcd-restores/" + restoreStamp + ".restored" +
		" --name b --initial-cluster b=https://172.31.0.3:2380 --initial-advertise-peer-urls https://172.31.0.3:2380" +
		" --initial-cluster-token knode-demo-restored-" + restoreStamp + " --bump-revision 1000000000 --mark-compacted"
	if got := strings.Join(f.Exec.Runs, "|"); got != want {
		t.Errorf("ran:\n%s\nwant:\n%s", got, want)
	}
	if got := readString(f, "/var/lib/etcd/member/snap/db"); got != "restored" {
		t.Errorf("data dir holds %q", got)
	}
	if got := readString(f, "/var/lib/etcd-restores/"+restoreStamp+".before"+"/member/snap/db"); got != "old" || res.Before != "/var/lib/etcd-restores/"+restoreStamp+".before" {
		t.Errorf("previous data %q kept in %s", got, res.Before)
	}
	if f.Files.Exists("/var/lib/etcd-restores/" + restoreStamp + ".restored") {
		t.Error("the restore's working directory is left")
	}
	if got := strings.Join(f.Pods.Restarted, " "); got != "kube-system/etcd-b kube-system/kube-apiserver-b kube-system/kube-controller-manager-b kube-system/kube-scheduler-b" {
		t.Errorf("restarted %s", got)
	}
	// The same restore again: its directories exist, nothing is touched.
	if _, err := hostprep.RestoreEtcd(context.Background(), s, f.Host(), r, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second restore with the same stamp: %v", err)
	}
}

// A restored member that never becomes healthy: the previous data is put
// back and etcd restarted on it; the restored data is kept aside.
func TestRestoreEtcdPutsBackOnFailure(t *testing.T) {
	f, s := restoreFake(t)
	sick := errors.New("etcd member https://127.0.0.1:2379 has no leader")
	r := hostprep.EtcdRestore{Snapshot: snapshotPath, Stamp: restoreStamp, Wait: 1500 * time.Millisecond,
		Healthy: func(context.Context) error { return sick }}
	_, err := hostprep.RestoreEtcd(context.Background(), s, f.Host(), r, slog.New(slog.DiscardHandler))
	if !errors.Is(err, sick) || !strings.Contains(err.Error(), "previous etcd data is back") {
		t.Fatalf("err = %v", err)
	}
	if got := readString(f, "/var/lib/etcd/member/snap/db"); got != "old" {
		t.Errorf("data dir holds %q after the failure", got)
	}
	if got := readString(f, "/var/lib/etcd-restores/"+restoreStamp+".restored.failed/member/snap/db"); got != "restored" {
		t.Errorf("restored data not kept aside: %q", got)
	}
	if f.Files.Exists("/var/lib/etcd-restores/" + restoreStamp + ".before") {
		t.Error("the previous data is still aside")
	}
	if got := strings.Join(f.Pods.Restarted, " "); got != "kube-system/etcd-b kube-system/etcd-b" {
		t.Errorf("restarted %s; want etcd onto the restored data, then onto the previous", got)
	}
}

// etcdutl failing, or this node not a master, changes nothing.
func TestRestoreEtcdRefusals(t *testing.T) {
	f, s := restoreFake(t)
	before := f.Files.String()
	f.Exec.Fail = map[string]error{etcdutlPath: errors.New("exit status 1")}
	r := hostprep.EtcdRestore{Snapshot: snapshotPath, Stamp: restoreStamp, Healthy: func(context.Context) error { return nil }}
	if _, err := hostprep.RestoreEtcd(context.Background(), s, f.Host(), r, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("etcdutl failed: %v", err)
	}
	f.Exec.Fail = nil
	s.Self.Master = false
	if _, err := hostprep.RestoreEtcd(context.Background(), s, f.Host(), r, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not a master") {
		t.Errorf("a worker: %v", err)
	}
	if after := f.Files.String(); after != before || len(f.Pods.Restarted) != 0 {
		t.Errorf("files changed or pods restarted:\n%s\nwant\n%s\n%v", after, before, f.Pods.Restarted)
	}
}

// Another master follows a restore: its etcd is stopped, its data set
// aside, and it is added through the restorer alone (c, a master of the old
// cluster, is never asked), then started with the restored membership. An
// attempt cut off after the data was set aside continues without touching
// the kept data.
func TestRejoinEtcd(t *testing.T) {
	const (
		endpointA = "https://172.31.0.2:2379"
		peerA     = "https://172.31.0.2:2380"
		peerB     = "https://172.31.0.3:2380"
	)
	f, s := restoreFake(t)
	s.Peers[0].Master, s.Peers[1].Master = true, true
	f.Pods.Stopped = map[string]bool{"kube-system/etcd-b": true}
	f.Etcd = &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}}, Down: map[string]bool{endpointA: true}}
	before := "/var/lib/etcd-restores/" + restoreStamp + ".before"
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	err := hostprep.RejoinEtcd(ctx, s, f.Host(), s.Peers[0], before, slog.New(slog.DiscardHandler))
	cancel()
	if err == nil {
		t.Fatal("joined through an etcd that is down")
	}
	if f.Files.Exists(path.Join(hostprep.ManifestsDir, "etcd.yaml")) || f.Files.Exists(hostprep.EtcdDataDir) {
		t.Fatal("etcd manifest or data left in place")
	}
	f.Etcd.Down = nil
	if err := hostprep.RejoinEtcd(context.Background(), s, f.Host(), s.Peers[0], before, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Etcd.Calls {
		if strings.Contains(c, "172.31.0.4") {
			t.Errorf("asked the old cluster's member c: %s", c)
		}
	}
	m := readString(f, path.Join(hostprep.ManifestsDir, "etcd.yaml"))
	for _, want := range []string{"--initial-cluster=a=" + peerA + ",b=" + peerB + "\n", "--initial-cluster-state=existing\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("etcd.yaml lacks %q:\n%s", want, m)
		}
	}
	if got := readString(f, before+"/member/snap/db"); got != "old" {
		t.Errorf("kept data: %q", got)
	}
}
