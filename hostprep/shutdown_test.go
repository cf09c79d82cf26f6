package hostprep_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// At system shutdown the control plane is stopped only once the kubelet,
// stopped beside knode-shutdown.service, has gone (it would start the
// containers again); stopped by hand while the kubelet runs, the unit stops
// nothing.
func TestShutdownControlPlaneWaitsForTheKubelet(t *testing.T) {
	ctx := context.Background()
	running := []string{"kube-system/etcd-m1", "kube-system/kube-apiserver-m1", "kube-system/kube-controller-manager-m1",
		"kube-system/kube-scheduler-m1", "kube-system/coredns-x"}
	f := hostpreptest.New()
	f.Pods.Running = running
	if err := f.Systemd.Restart(ctx, "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = f.Systemd.Stop(ctx, "kubelet.service") // the shutdown's stop of the kubelet
	}()
	n, err := hostprep.ShutdownControlPlane(ctx, f.Host(), 10*time.Second)
	if err != nil || n != 3 {
		t.Fatalf("stopped %d, %v; want 3", n, err)
	}
	if st, _, _ := f.Systemd.State(ctx, "kubelet.service"); st != "inactive" {
		t.Fatalf("stopped the control plane with the kubelet %s", st)
	}
	want := []string{"kube-system/kube-scheduler-m1", "kube-system/kube-controller-manager-m1", "kube-system/kube-apiserver-m1"}
	if !slices.Equal(f.Pods.ControlPlaneStops, want) {
		t.Errorf("stops %v, want %v", f.Pods.ControlPlaneStops, want)
	}

	// By hand, with the kubelet running: nothing.
	g := hostpreptest.New()
	g.Pods.Running = running
	if err := g.Systemd.Restart(ctx, "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	n, err = hostprep.ShutdownControlPlane(ctx, g.Host(), 200*time.Millisecond)
	if err == nil || n != 0 || len(g.Pods.ControlPlaneStops) != 0 || !strings.Contains(err.Error(), "kubelet.service is still active") {
		t.Errorf("with the kubelet running: stopped %d %v, %v", n, g.Pods.ControlPlaneStops, err)
	}
}
