//go:build vme2e

package vm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/kubeapi"
	"knode.dev/knode/manifests"
)

// The VM scenarios: go test -tags vme2e ./e2e/vm (make vm-e2e, make vm-smoke). Root, qemu.

var theLab *Lab

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "vm e2e: needs root (qemu, network namespaces)")
		os.Exit(1)
	}
	l, err := New(os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	theLab = l
	code := m.Run()
	if err := l.Down(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "vm e2e teardown:", err)
	}
	os.Exit(code)
}

// knodeBin is the binary under test: KNODE_BIN, else bin/knode of this checkout.
func knodeBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KNODE_BIN")
	if bin == "" {
		bin = filepath.Join(filepath.Dir(theLab.Script), "..", "..", "bin", "knode")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("knode binary: %v (make, or set KNODE_BIN)", err)
	}
	return bin
}

// readyTimeout bounds every wait for Ready and knode's own waits under TCG:
// KNODE_VM_READY_TIMEOUT, default 45m: 1.4 times the slowest init measured under TCG here
// (1953 s, of which 1698 s waiting for the local apiserver, on a busy host).
func readyTimeout(t *testing.T) time.Duration {
	if s := os.Getenv("KNODE_VM_READY_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("KNODE_VM_READY_TIMEOUT=%q: %v", s, err)
		}
		return d
	}
	return 45 * time.Minute
}

// startVMs boots n fresh VMs, those numbered in twoNICs (1-based) with a second interface
// that carries their default route; they are stopped when the test ends.
func startVMs(t *testing.T, n int, twoNICs ...int) []*VM {
	t.Helper()
	ctx := t.Context()
	theLab.TwoNICs = twoNICs
	t.Cleanup(func() { theLab.TwoNICs = nil })
	accel, err := theLab.Accel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	vms, err := theLab.Up(ctx, n, knodeBin(t))
	t.Cleanup(func() {
		if err := theLab.Down(context.Background()); err != nil {
			t.Errorf("vm lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	timing(t, fmt.Sprintf("%d VMs boot to ssh (accel %s)", n, accel), time.Since(t0))
	return vms
}

// form runs provision.sh init on the first VM and join on the others, one after another, and
// reports knode's own figures for each.
func form(t *testing.T, vms []*VM) {
	t.Helper()
	ctx := t.Context()
	// Under TCG a node takes minutes: knode's own waits get the scenarios' bound.
	var flags []string
	if accel, err := theLab.Accel(ctx); err != nil || accel != "kvm" {
		flags = []string{"--timeout", readyTimeout(t).String()}
	}
	t0 := time.Now()
	if err := vms[0].Provision(ctx, "init", flags...); err != nil {
		t.Fatal(err)
	}
	timing(t, vms[0].Name+": provision.sh init returned", time.Since(t0))
	reportOutcome(t, "init")
	connectAPI(t, vms[0])
	for _, v := range vms[1:] {
		t1 := time.Now()
		if err := v.Provision(ctx, "join", flags...); err != nil {
			t.Fatal(err)
		}
		timing(t, v.Name+": provision.sh join returned", time.Since(t1))
		reportOutcome(t, "join-"+v.Name)
	}
}

// reportOutcome logs the rows of knode's timing table (init --json / join --json).
func reportOutcome(t *testing.T, name string) {
	t.Helper()
	o, err := theLab.Outcome(name)
	if err != nil {
		t.Error(err)
		return
	}
	for _, r := range o.Timings {
		t.Logf("TIMING %s %s: %.1fs (at %.1fs)", name, r.Name, r.Seconds, r.At)
	}
	t.Logf("TIMING %s total: %.1fs (node %s, pod CIDR %s)", name, o.Seconds, o.Node, o.PodCIDR)
}

// node is what the scenarios read of a Node object.
type node struct {
	Name, PodCIDR string
	// InternalIP is the address the kubelet registered (--node-ip), the one the apiserver
	// reaches it on.
	InternalIP string
	Ready      bool
}

// api is the master's apiserver as the harness reads it (connectAPI): from the host, through
// the lab's namespace, with the cluster's admin credential. Polling with `knode kubectl` in
// the master instead cost its one emulated CPU a third of its time under TCG (kubectl at 37 %
// in top), which the control plane needed.
var api *kubeapi.Client

// connectAPI reads the admin kubeconfig on master and points api at master's apiserver
// through a loopback forward into the lab's namespace (the apiserver's certificate names
// 127.0.0.1), for as long as t runs.
func connectAPI(t *testing.T, master *VM) {
	t.Helper()
	out, err := master.Sh(t.Context(), "cat "+hostprep.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := manifests.ParseKubeconfig([]byte(out))
	if err != nil {
		t.Fatalf("%s on %s: %v", hostprep.AdminKubeconfig, master.Name, err)
	}
	local, err := theLab.Forward(t.Context(), master.IP+":6443")
	if err != nil {
		t.Fatal(err)
	}
	if api, err = kubeapi.New("https://"+local, kc.CAPEM, kc.CertPEM, kc.KeyPEM); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close(); api = nil })
}

// get reads path from the apiserver into v; an answer other than 200 is an error.
func get(ctx context.Context, path string, v any) error {
	code, err := api.Get(ctx, path, v)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d", path, code)
	}
	return err
}

// nodes lists the cluster's Nodes.
func nodes(ctx context.Context) (map[string]node, error) {
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ PodCIDR string }
			Status   struct {
				Conditions []struct{ Type, Status string }
				Addresses  []struct{ Type, Address string }
			}
		}
	}
	if err := get(ctx, "/api/v1/nodes", &list); err != nil {
		return nil, err
	}
	m := map[string]node{}
	for _, it := range list.Items {
		n := node{Name: it.Metadata.Name, PodCIDR: it.Spec.PodCIDR}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready = c.Status == "True"
			}
		}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" {
				n.InternalIP = a.Address
			}
		}
		m[n.Name] = n
	}
	return m, nil
}

// waitReady waits until every VM's Node is Ready with a pod CIDR.
func waitReady(t *testing.T, vms []*VM) map[string]node {
	t.Helper()
	var last map[string]node
	waitFor(t, "every node Ready with a pod CIDR", readyTimeout(t), func() (bool, string) {
		m, err := nodes(t.Context())
		if err != nil {
			return false, err.Error()
		}
		last = m
		var missing []string
		for _, v := range vms {
			if n, ok := m[v.Name]; !ok || !n.Ready || n.PodCIDR == "" {
				missing = append(missing, fmt.Sprintf("%s=%+v", v.Name, n))
			}
		}
		return len(missing) == 0, "not yet: " + strings.Join(missing, ", ")
	})
	return last
}

// waitFor polls cond every 5 s until it holds or timeout, failing the test with cond's last
// message.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v (%s)", what, t.Context().Err(), msg)
		case <-time.After(5 * time.Second):
		}
	}
}

func timing(t *testing.T, what string, d time.Duration) {
	t.Helper()
	t.Logf("TIMING %s: %.1fs", what, d.Seconds())
}
