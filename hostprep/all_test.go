package hostprep_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/internal/goldentest"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/pki"
)

func golden(t *testing.T, name, got string) { goldentest.Compare(t, name, []byte(got)) }

// fullSpec is testSpec with the cluster's trust material and payload names.
func fullSpec(t *testing.T, mode hostprep.NetworkMode) (*hostprep.Spec, *pki.CA) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, err := pki.NewCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub, err := pki.NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	etcdCA, err := pki.NewEtcdCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	proxyCA, err := pki.NewFrontProxyCA("demo", now)
	if err != nil {
		t.Fatal(err)
	}
	s := testSpec(mode)
	s.PKI = hostprep.PKI{CA: ca, ServiceAccountKeyPEM: saKey, ServiceAccountPubPEM: saPub,
		EtcdCA: etcdCA, FrontProxyCA: proxyCA, EncryptionKey: []byte("0123456789abcdef0123456789abcdef")}
	s.Images = hostprep.Images{Pause: "knode.local/pause:3.10", ControlPlane: "knode.local/control-plane:v1.36.3",
		Archives: []hostprep.ImageArchive{{Path: "/var/lib/knode/images/control-plane.tar", SHA256: "aaaa", MasterOnly: true}, {Path: "/var/lib/knode/images/pause.tar", SHA256: "bbbb"}}}
	return s, ca
}

func TestAllPhases(t *testing.T) {
	for _, tt := range []struct {
		name   string
		master bool
	}{{"master", true}, {"worker", false}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newNetFake()
			before := f.String()
			s, ca := fullSpec(t, hostprep.Routed)
			s.Self.Master = tt.master
			if !tt.master {
				// A worker holds no CA key: a master issued its credentials.
				s.Peers[0].Master = true
				kubelet, err := pki.Issue(ca, pki.KubeletClient(s.Self.Name), f.Probe.F.Now)
				if err != nil {
					t.Fatal(err)
				}
				proxy, err := pki.Issue(ca, pki.CertSpec{CommonName: "system:kube-proxy", Client: true}, f.Probe.F.Now)
				if err != nil {
					t.Fatal(err)
				}
				serving, err := pki.Issue(ca, pki.KubeletServing(s.Self.Name, s.Self.Address), f.Probe.F.Now)
				if err != nil {
					t.Fatal(err)
				}
				s.PKI = hostprep.PKI{CA: &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}, Kubelet: kubelet, KubeProxy: proxy, KubeletServing: serving}
			}
			var out strings.Builder
			cs, err := (&hostprep.Runner{Out: &out}).Apply(context.Background(), s, f.Host())
			if err != nil {
				t.Fatalf("apply: %v\n%s", err, out.String())
			}
			golden(t, "all-"+tt.name+".txt", f.String()+"## exec\n"+strings.Join(f.Exec.Runs, "\n")+"\n")
			golden(t, "all-"+tt.name+"-progress.txt", out.String())
			if len(cs) == 0 {
				t.Error("no changes reported")
			}
			if cs, err := (&hostprep.Runner{}).Apply(context.Background(), s, f.Host()); err != nil || len(cs) != 0 {
				t.Errorf("second apply: %v %v", cs, err)
			}
			kc, _ := f.Files.ReadFile(hostprep.KubeletKubeconfig)
			// Every client goes through the node-local endpoint, and every
			// master's serving certificate names it.
			if !strings.Contains(string(kc), "server: https://"+hostprep.APIEndpoint().String()+"\n") || !strings.Contains(string(kc), "system:node:b") {
				t.Errorf("kubelet.conf:\n%s", kc)
			}
			if tt.master {
				certPEM, _ := f.Files.ReadFile(hostprep.PKIDir + "/apiserver.crt")
				cert, err := pki.ParseCert(certPEM)
				if err != nil {
					t.Fatal(err)
				}
				if err := cert.VerifyHostname(hostprep.APIEndpoint().Addr().String()); err != nil {
					t.Errorf("the apiserver certificate does not cover the node-local endpoint: %v", err)
				}
			}
			// The kubelet's pods run; reset removes them through the CRI.
			f.Pods.Running = []string{"kube-system/coredns-1", "default/web-1"}
			if _, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{}); err != nil {
				t.Fatalf("reset: %v", err)
			}
			if got, want := unloaded(f.String()), unloaded(before); got != want {
				t.Errorf("after reset:\n%s\nbefore:\n%s", got, want)
			}
			if len(f.Pods.Running) != 0 {
				t.Errorf("pods left after reset: %v", f.Pods.Running)
			}
			if slices.ContainsFunc(f.Exec.Runs, func(r string) bool { return strings.Contains(r, "/ctr ") && !strings.Contains(r, " images import ") }) {
				t.Errorf("reset ran ctr: %q", f.Exec.Runs)
			}
		})
	}
}

func TestWorkerWithoutCredential(t *testing.T) {
	f := newNetFake()
	s, ca := fullSpec(t, hostprep.Routed)
	s.Self.Master, s.Peers[0].Master = false, true
	s.PKI = hostprep.PKI{CA: &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}}
	before := f.String()
	_, err := (&hostprep.Runner{}).Apply(context.Background(), s, f.Host())
	if err == nil || !strings.Contains(err.Error(), "kubelet-client credential for system:node:b: this node does not hold the CA key") {
		t.Fatalf("err = %v", err)
	}
	if f.String() != before {
		t.Error("host changed")
	}
}

func TestCertificateReuse(t *testing.T) {
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	r := &hostprep.Runner{Only: []string{hostprep.PhasePKI}}
	if _, err := r.Apply(context.Background(), s, f.Host()); err != nil {
		t.Fatal(err)
	}
	old, _ := f.Files.ReadFile(hostprep.PKIDir + "/apiserver.crt")
	if cs, _ := r.Apply(context.Background(), s, f.Host()); len(cs) != 0 {
		t.Errorf("valid certificates rewritten: %v", cs)
	}
	// A new master changes the apiserver's names: only its certificate changes.
	s.Peers[1].Master = true
	cs, err := r.Apply(context.Background(), s, f.Host())
	if err != nil {
		t.Fatal(err)
	}
	var what []string
	for _, c := range cs {
		what = append(what, c.What)
	}
	if got := strings.Join(what, "; "); got != "update /etc/kubernetes/pki/apiserver.crt; update /etc/kubernetes/pki/apiserver.key" {
		t.Errorf("changes: %s", got)
	}
	if now, _ := f.Files.ReadFile(hostprep.PKIDir + "/apiserver.crt"); string(now) == string(old) {
		t.Error("apiserver certificate not reissued")
	}
}

func TestPreflight(t *testing.T) {
	f := newNetFake()
	f.Probe.F.EUID = 1000
	f.Probe.F.CgroupVersion = 1
	f.Probe.F.InContainer = true
	f.Probe.Busy[6443] = true
	f.Modules.Missing["vxlan"] = true
	s, _ := fullSpec(t, hostprep.VXLAN)
	r := &hostprep.Runner{Only: []string{hostprep.PhasePreflight}}
	_, err := r.Apply(context.Background(), s, f.Host())
	for _, want := range []string{"[root] running as uid 1000", "[ports] TCP ports already in use: 6443", "[kernel-features] kernel feature vxlan is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	var out strings.Builder
	r.IgnorePreflightErrors, r.Out = []string{"root", "ports", "kernel-features"}, &out
	if _, err := r.Apply(context.Background(), s, f.Host()); err != nil {
		t.Fatalf("with errors ignored: %v", err)
	}
	for _, want := range []string{"WARNING cgroups: cgroup v1", "WARNING container:", "WARNING root (ignored error)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPhaseSelection(t *testing.T) {
	var names []string
	for _, p := range hostprep.Phases() {
		names = append(names, p.Name)
	}
	want := "preflight kernel bridge pod-network cni iptables pki containerd images static-pods units controllers"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("phases: %s\nwant: %s", got, want)
	}
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	if _, err := (&hostprep.Runner{Only: []string{"nope"}}).Apply(context.Background(), s, f.Host()); err == nil || !strings.Contains(err.Error(), `unknown phase "nope"`) {
		t.Errorf("err = %v", err)
	}
	cs, err := (&hostprep.Runner{Skip: []string{hostprep.PhasePKI, hostprep.PhaseUnits, hostprep.PhaseImages, hostprep.PhaseStaticPods, hostprep.PhaseContainerd, hostprep.PhaseCNI}}).Apply(context.Background(), s, f.Host())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Phase == hostprep.PhasePKI || c.Phase == hostprep.PhaseUnits {
			t.Errorf("skipped phase ran: %v", c)
		}
	}
}

// TestResetHalfInitialised resets a host where a run stopped midway.
func TestResetHalfInitialised(t *testing.T) {
	f := newNetFake()
	before := f.String()
	s, _ := fullSpec(t, hostprep.VXLAN)
	f.Systemd.Fail = map[string]error{"kubelet.service": os.ErrPermission}
	if _, err := (&hostprep.Runner{NoRollback: true}).Apply(context.Background(), s, f.Host()); err == nil {
		t.Fatal("apply succeeded")
	}
	if !strings.Contains(f.String(), "link knode.vxlan") {
		t.Fatal("expected a half-initialised host")
	}
	// containerd never started: nothing to remove, and reset goes on.
	f.Pods.Down = true
	if _, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{}); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if got, want := unloaded(f.String()), unloaded(before); got != want {
		t.Errorf("after reset:\n%s\nbefore:\n%s", got, want)
	}
	// Reset of a clean host changes nothing.
	if cs, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{}); err != nil || len(cs) != 0 {
		t.Errorf("second reset: %v %v", cs, err)
	}
}

// The controllers phase waits for the local apiserver as long as the Runner says (init's and
// join's --timeout), and its error names that bound and the flag: on an emulated VM the
// default 3 minutes were too short (issue 11).
func TestControllersWaitHonoursAPIServerWait(t *testing.T) {
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	s.Self.Master = true
	url := "https://" + s.Self.Address.String() + ":6443/readyz"
	f.Probe.NotServing = map[string]bool{url: true}
	r := &hostprep.Runner{Only: []string{hostprep.PhaseControllers}, NoRollback: true, APIServerWait: 300 * time.Millisecond}
	start := time.Now()
	_, err := r.Apply(context.Background(), s, f.Host())
	if err == nil || !strings.Contains(err.Error(), url+" not ready after 300ms") || !strings.Contains(err.Error(), "longer --timeout") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("waited %s, not about 300ms", d)
	}
	// Served: the manifests are written.
	f.Probe.NotServing = nil
	if _, err := r.Apply(context.Background(), s, f.Host()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Files.ReadFile(hostprep.ManifestsDir + "/kube-scheduler.yaml"); err != nil {
		t.Errorf("scheduler manifest: %v", err)
	}
}

// The kubelet sets host-global sysctls itself; knode records them before it runs and reset
// puts them back (on a real host a reset left vm.overcommit_memory=1 and kernel.panic=10).
func TestResetRestoresTheKubeletsSysctls(t *testing.T) {
	ctx := context.Background()
	f := newNetFake()
	f.Sysctl.Values["vm.overcommit_memory"] = "0"
	f.Sysctl.Values["kernel.panic"] = "0"
	s, _ := fullSpec(t, hostprep.Routed)
	r := &hostprep.Runner{Only: []string{hostprep.PhaseKernel}}
	cs, err := r.Apply(ctx, s, f.Host())
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, c := range cs {
		if strings.HasPrefix(c.What, "record sysctl ") {
			recorded = append(recorded, c.What)
		}
	}
	// Only what this kernel has (the fake has two of the kubelet's parameters).
	if len(recorded) != 2 {
		t.Errorf("recorded: %q", recorded)
	}
	if cs, err := r.Apply(ctx, s, f.Host()); err != nil || len(cs) != 0 {
		t.Errorf("second apply: %v %v", cs, err)
	}
	// The kubelet starts and sets them.
	f.Sysctl.Values["vm.overcommit_memory"] = "1"
	f.Sysctl.Values["kernel.panic"] = "10"
	if _, err := hostprep.Reset(ctx, f.Host(), hostprep.ResetOptions{DataDir: s.DataDir}); err != nil {
		t.Fatal(err)
	}
	if a, b := f.Sysctl.Values["vm.overcommit_memory"], f.Sysctl.Values["kernel.panic"]; a != "0" || b != "0" {
		t.Errorf("after reset: vm.overcommit_memory=%s kernel.panic=%s, want 0 and 0", a, b)
	}
}

// Reset removes the directories knode's writes created and those its runtime made, once they
// are empty, and keeps the ones that were there before (on a real host a reset left
// /etc/kubernetes, /etc/cni, /etc/containerd, /opt/containerd and /var/lib/cni behind).
func TestResetRemovesTheDirectoriesKnodeMade(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, d := range []string{"etc/containerd", "opt", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The host's own file in a directory knode also writes to.
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/host.toml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newNetFake()
	h := f.Host()
	h.Files = hostprep.RootFiles{Root: root}
	s, _ := fullSpec(t, hostprep.Routed)
	r := &hostprep.Runner{Only: []string{hostprep.PhasePreflight, hostprep.PhaseCNI, hostprep.PhasePKI, hostprep.PhaseContainerd}}
	if _, err := r.Apply(ctx, s, h); err != nil {
		t.Fatal(err)
	}
	// containerd and the CNI plugins make their own directories as they run.
	for _, d := range []string{"opt/containerd/bin", "var/lib/cni/networks/knode"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hostprep.Reset(ctx, h, hostprep.ResetOptions{DataDir: s.DataDir}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"etc/cni", "etc/kubernetes", "opt/containerd", "var/lib/cni", "var/lib/knode"} {
		if _, err := os.Stat(filepath.Join(root, d)); err == nil {
			t.Errorf("/%s left after reset", d)
		}
	}
	for _, p := range []string{"etc/containerd/host.toml", "opt", "var/lib"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("/%s: %v", p, err)
		}
	}
}

// With the systemd cgroup driver the kubelet's pod cgroups are transient slices; reset stops
// them once the containers are gone (a real host kept them loaded until the next boot).
func TestResetStopsThePodSlices(t *testing.T) {
	ctx := context.Background()
	f := newNetFake()
	s, _ := fullSpec(t, hostprep.Routed)
	r := &hostprep.Runner{Only: []string{hostprep.PhasePreflight, hostprep.PhaseContainerd}}
	if _, err := r.Apply(ctx, s, f.Host()); err != nil {
		t.Fatal(err)
	}
	if err := f.Systemd.Restart(ctx, "kubepods.slice"); err != nil { // the kubelet made it
		t.Fatal(err)
	}
	if _, err := hostprep.Reset(ctx, f.Host(), hostprep.ResetOptions{DataDir: s.DataDir}); err != nil {
		t.Fatal(err)
	}
	if active, _, _ := f.Systemd.State(ctx, "kubepods.slice"); active == "active" {
		t.Error("kubepods.slice still active after reset")
	}
}
