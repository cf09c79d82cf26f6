package hostprep_test

import (
	"context"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

// shortLived configures a master (or a worker) whose leaves last a minute,
// at the fake clock's time.
func shortLived(t *testing.T, master bool) (*hostprep.Spec, *hostpreptest.Host, *pki.CA) {
	t.Helper()
	f := newNetFake()
	s, ca := fullSpec(t, hostprep.Routed)
	s.CertLifetime = time.Minute
	s.Self.Master = master
	if !master {
		s.Peers[0].Master = true
		s.PKI = hostprep.PKI{CA: &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}}
		workerCreds(t, s, ca, f.Probe.F.Now)
	}
	if _, err := (&hostprep.Runner{Out: io.Discard}).Apply(context.Background(), s, f.Host()); err != nil {
		t.Fatal(err)
	}
	f.Systemd.Restarts = nil
	return s, f, ca
}

// workerCreds issues a worker's three credentials as a master would, for a minute.
func workerCreds(t *testing.T, s *hostprep.Spec, ca *pki.CA, now time.Time) {
	t.Helper()
	issue := func(spec pki.CertSpec) *pki.Credential {
		spec.Validity = time.Minute
		c, err := pki.Issue(ca, spec, now)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	s.PKI.Kubelet = issue(pki.KubeletClient(s.Self.Name))
	s.PKI.KubeProxy = issue(pki.CertSpec{CommonName: "system:kube-proxy", Client: true})
	s.PKI.KubeletServing = issue(pki.KubeletServing(s.Self.Name, s.Self.Address))
}

func renew(t *testing.T, s *hostprep.Spec, f *hostpreptest.Host) hostprep.Renewal {
	t.Helper()
	rn, err := hostprep.Renew(context.Background(), s, f.Host(), io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return rn
}

func TestRenewalSchedule(t *testing.T) {
	s, f, _ := shortLived(t, true)
	issued := f.Probe.F.Now
	sched := hostprep.CertSchedule(s, f.Files)
	if len(sched) != 13 {
		t.Fatalf("%d leaves scheduled, want 13 on a master: %v", len(sched), sched)
	}
	// A minute's certificate is back-dated 6 s: 66 s of life, renewed with 22 s left.
	want := issued.Add(38 * time.Second)
	for _, d := range sched {
		if !d.RenewAt.Equal(want) {
			t.Errorf("%s renews at %s, want %s", d.Path, d.RenewAt, want)
		}
	}
}

func TestRenewOnlyWhenDue(t *testing.T) {
	s, f, ca := shortLived(t, true)
	issued := f.Probe.F.Now
	before := f.Files.String()

	f.Probe.F.Now = issued.Add(30 * time.Second) // two thirds of the life left minus 8 s: early
	if rn := renew(t, s, f); len(rn.Renewed) != 0 || len(rn.Restarted) != 0 || len(f.Systemd.Restarts) != 0 {
		t.Fatalf("early renewal changed %v, restarted %v %v", rn.Renewed, rn.Restarted, f.Systemd.Restarts)
	}
	if f.Files.String() != before {
		t.Fatal("an early renewal rewrote files")
	}

	f.Probe.F.Now = issued.Add(40 * time.Second)
	rn := renew(t, s, f)
	wantRestarted := []string{"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-proxy.service", "kube-scheduler.yaml", "kubelet.service"}
	if !slices.Equal(rn.Restarted, wantRestarted) {
		t.Errorf("restarted %v, want %v", rn.Restarted, wantRestarted)
	}
	if !slices.Equal(f.Systemd.Restarts, []string{"kube-proxy.service", "kubelet.service"}) {
		t.Errorf("units restarted %v", f.Systemd.Restarts)
	}
	for _, d := range hostprep.CertSchedule(s, f.Files) {
		if want := f.Probe.F.Now.Add(38 * time.Second); !d.RenewAt.Equal(want) {
			t.Errorf("%s after renewal renews at %s, want %s", d.Path, d.RenewAt, want)
		}
		data, _ := f.Files.ReadFile(d.Path)
		cert, err := pki.ParseCert(data)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.Path, hostprep.PKIDir+"/etcd/") || strings.Contains(d.Path, "etcd-client") || strings.Contains(d.Path, "front-proxy") {
			continue // other CAs
		}
		if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
			t.Errorf("%s: %v", d.Path, err)
		}
	}
	// Every static pod's containers were restarted through the CRI.
	wantPods := []string{"kube-system/etcd-b", "kube-system/kube-apiserver-b", "kube-system/kube-controller-manager-b", "kube-system/kube-scheduler-b"}
	if !slices.Equal(f.Pods.Restarted, wantPods) {
		t.Errorf("pods restarted %v, want %v", f.Pods.Restarted, wantPods)
	}
	// And once renewed, nothing is due, and re-applying every phase
	// changes nothing: renewal leaves the manifests as rendered.
	if rn := renew(t, s, f); len(rn.Renewed) != 0 {
		t.Errorf("second renewal changed %v", rn.Renewed)
	}
	if cs, err := (&hostprep.Runner{Out: io.Discard}).Apply(context.Background(), s, f.Host()); err != nil || len(cs) != 0 {
		t.Errorf("re-applying the phases after a renewal: %v %v", cs, err)
	}
}

// TestRenewRestartsOnlyUsers renews one certificate at a time: only what
// reads that certificate restarts.
func TestRenewRestartsOnlyUsers(t *testing.T) {
	for _, tt := range []struct {
		leaf, renewed string
		restarted     []string
	}{
		{"scheduler", hostprep.KubernetesDir + "/" + manifests.SchedulerConf, []string{"kube-scheduler.yaml"}},
		{"controller-manager", hostprep.KubernetesDir + "/" + manifests.ControllerManagerConf, []string{"kube-controller-manager.yaml"}},
		{"etcd/peer", hostprep.PKIDir + "/etcd/peer.crt", []string{"etcd.yaml"}},
		{"front-proxy-client", hostprep.PKIDir + "/front-proxy-client.crt", []string{"kube-apiserver.yaml"}},
		{"kube-proxy", hostprep.KubeProxyKubeconfig, []string{"kube-proxy.service"}},
		{"kubelet-client", hostprep.KubeletKubeconfig, []string{"kubelet.service"}},
		{"kubelet-serving", "", nil}, // the kubelet reloads its serving certificate
		{"admin", "", nil},           // read by each kubectl call
	} {
		t.Run(tt.leaf, func(t *testing.T) {
			s, f, _ := shortLived(t, true)
			f.Files.Remove(path.Join(hostprep.PKIDir, tt.leaf+".crt"))
			rn := renew(t, s, f)
			var want []string
			if tt.renewed != "" {
				want = []string{tt.renewed}
			}
			if !slices.Equal(rn.Renewed, want) || !slices.Equal(rn.Restarted, tt.restarted) {
				t.Errorf("renewed %v restarted %v, want %v and %v", rn.Renewed, rn.Restarted, want, tt.restarted)
			}
			// The table agrees with the manifests: exactly the static pods
			// naming the renewed file are replaced.
			file := path.Join(hostprep.PKIDir, tt.leaf+".crt")
			if tt.renewed != "" {
				file = tt.renewed
			}
			for _, m := range []string{"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"} {
				data, _ := f.Files.ReadFile(path.Join(hostprep.ManifestsDir, m))
				if uses := strings.Contains(string(data), "="+file+"\n"); uses != slices.Contains(tt.restarted, m) {
					t.Errorf("%s names %s: %v, but restarted: %v", m, file, uses, slices.Contains(tt.restarted, m))
				}
			}
		})
	}
}

// TestRenewWorker: a worker renews with the credentials a master signed
// anew; until it has them, the due ones stay.
func TestRenewWorker(t *testing.T) {
	s, f, ca := shortLived(t, false)
	if got := len(hostprep.CertSchedule(s, f.Files)); got != 3 {
		t.Fatalf("%d leaves on a worker, want 3", got)
	}
	f.Probe.F.Now = f.Probe.F.Now.Add(45 * time.Second)
	if rn := renew(t, s, f); len(rn.Renewed) != 0 {
		t.Fatalf("renewed %v without new credentials", rn.Renewed)
	}
	workerCreds(t, s, ca, f.Probe.F.Now)
	rn := renew(t, s, f)
	if !slices.Equal(rn.Restarted, []string{"kube-proxy.service", "kubelet.service"}) {
		t.Errorf("restarted %v", rn.Restarted)
	}
	serving, _ := f.Files.ReadFile(path.Join(hostprep.PKIDir, manifests.KubeletServingCert))
	if string(serving) != string(s.PKI.KubeletServing.CertPEM) {
		t.Error("the kubelet serving certificate was not replaced")
	}
}
