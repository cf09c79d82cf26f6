package hostprep_test

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// A master that is not the cluster's first is added to the running etcd
// through the client API, then starts etcd with the membership etcd reported.
func TestEtcdJoin(t *testing.T) {
	const (
		endpointA = "https://172.31.0.2:2379"
		endpointC = "https://172.31.0.4:2379"
		peerA     = "https://172.31.0.2:2380"
		peerB     = "https://172.31.0.3:2380" // this node, b
		peerC     = "https://172.31.0.4:2380"
		both      = "--initial-cluster=a=" + peerA + ",b=" + peerB
	)
	for _, tt := range []struct {
		name string
		// masters among the peers, besides b itself
		masters []int
		etcd    *hostpreptest.Etcd
		calls   string
		flag    string
	}{
		{"added through the running master", []int{0}, &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}}},
			"members " + endpointA + "|add " + endpointA + " " + peerB + "|members " + endpointA, both},
		// A run cut off after the addition: etcd lists b, unnamed until it starts.
		{"added before, not started", []int{0}, &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}, {PeerURLs: []string{peerB}}}},
			"members " + endpointA, both},
		// c was added just before b and has not started: its name comes
		// from the masters' addresses.
		{"after another unstarted joiner", []int{0, 1}, &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}, {PeerURLs: []string{peerC}}}},
			"members " + endpointA + "," + endpointC + "|add " + endpointA + "," + endpointC + " " + peerB + "|members " + endpointA + "," + endpointC,
			"--initial-cluster=a=" + peerA + ",c=" + peerC + ",b=" + peerB},
		// etcd refuses while an earlier member has not started: retried.
		{"refused once", []int{0}, &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}}, AddErrs: []error{errors.New("etcdserver: unhealthy cluster")}},
			"members " + endpointA + "|add " + endpointA + " " + peerB + "|members " + endpointA + "|add " + endpointA + " " + peerB + "|members " + endpointA, both},
		// a is down; c answers.
		{"through any running master", []int{0, 1}, &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{peerA}}, {Name: "c", PeerURLs: []string{peerC}}}, Down: map[string]bool{endpointA: true}},
			"members " + endpointA + "," + endpointC + "|add " + endpointA + "," + endpointC + " " + peerB + "|members " + endpointA + "," + endpointC,
			"--initial-cluster=a=" + peerA + ",c=" + peerC + ",b=" + peerB},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newNetFake()
			s, _ := fullSpec(t, hostprep.Routed)
			for _, i := range tt.masters {
				s.Peers[i].Master = true
			}
			f.Etcd = tt.etcd
			if _, err := (&hostprep.Runner{}).Apply(context.Background(), s, f.Host()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(tt.etcd.Calls, "|"); got != tt.calls {
				t.Errorf("etcd calls:\n%s\nwant:\n%s", got, tt.calls)
			}
			m, err := f.Files.ReadFile(path.Join(hostprep.ManifestsDir, "etcd.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tt.flag + "\n", "--initial-cluster-state=existing\n"} {
				if !strings.Contains(string(m), want) {
					t.Errorf("etcd.yaml lacks %q:\n%s", want, m)
				}
			}
		})
	}
}

// With no master's etcd answering, the join fails naming the endpoints, this
// node's peer URL and the last error.
func TestEtcdJoinUnreachable(t *testing.T) {
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	s.Peers[0].Master = true
	f.Etcd.Down["https://172.31.0.2:2379"] = true
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host())
	if !errors.Is(err, hostpreptest.ErrNoEndpoint) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the last etcd error and the deadline", err)
	}
	for _, want := range []string{"join the etcd cluster through https://172.31.0.2:2379 as https://172.31.0.3:2380"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q in it", err, want)
		}
	}
	if f.Files.Exists(path.Join(hostprep.ManifestsDir, "etcd.yaml")) {
		t.Error("etcd.yaml written without a membership")
	}
}

// A master joining the running etcd backs up an etcd.yaml the host had (an
// earlier installation's) before writing its own; reset puts it back, though
// it removes the manifests directory, which knode made.
func TestEtcdJoinKeepsHostManifest(t *testing.T) {
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	s.Peers[0].Master = true
	f.Etcd = &hostpreptest.Etcd{Peers: []hostprep.EtcdPeer{{Name: "a", PeerURLs: []string{"https://172.31.0.2:2380"}}}}
	manifest := path.Join(hostprep.ManifestsDir, "etcd.yaml")
	const host = "# the host's own etcd pod\n"
	f.Files.WriteFile(manifest, []byte(host), 0o600)
	ctx := context.Background()
	if _, err := (&hostprep.Runner{}).Apply(ctx, s, f.Host()); err != nil {
		t.Fatal(err)
	}
	if b, _ := f.Files.ReadFile(manifest); string(b) == host {
		t.Fatal("etcd.yaml not written")
	}
	if _, err := hostprep.Reset(ctx, f.Host(), hostprep.ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Files.ReadFile(manifest); err != nil || string(b) != host {
		t.Errorf("etcd.yaml after reset: %q %v, want the host's", b, err)
	}
}
