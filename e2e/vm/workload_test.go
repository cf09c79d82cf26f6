//go:build vme2e

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"knode.dev/knode/e2e/lab"
)

// pod is what the workload checks read of a Pod.
type pod struct {
	Metadata struct{ Name string }
	Spec     struct{ NodeName string }
	Status   struct{ Phase, PodIP string }
}

// echoPods lists the echo workload's pods.
func echoPods(t *testing.T) ([]pod, error) {
	var list struct{ Items []pod }
	err := get(t.Context(), "/api/v1/namespaces/default/pods?labelSelector=app%3Decho", &list)
	return list.Items, err
}

// deployWorkload puts the echo image (lab.EchoImage, the container lab's) into the share,
// imports it on the master with `knode images import` (the other nodes pull it from there
// through knode's image mirror: no registry), and applies lab.EchoWorkload for one pod per VM.
func deployWorkload(t *testing.T, vms []*VM) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Now()
	tar, err := lab.EchoImage().Tarball(filepath.Join(filepath.Dir(theLab.Script), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	timing(t, "agnhost image built or cached", time.Since(t0))
	if err := copyFile(tar, filepath.Join(theLab.Share(), "agnhost.oci.tar")); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(theLab.Share(), "echo.yaml")
	if err := os.WriteFile(manifest, []byte(lab.EchoWorkload(len(vms), "IfNotPresent")), 0o644); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if out, err := vms[0].Sh(ctx, "knode images import "+ShareMount+"/agnhost.oci.tar 2>&1"); err != nil {
		t.Fatalf("knode images import on %s: %v\n%s", vms[0].Name, err, out)
	}
	timing(t, vms[0].Name+": knode images import of agnhost", time.Since(t1))
	if out, err := vms[0].Sh(ctx, "knode kubectl apply -f "+ShareMount+"/echo.yaml 2>&1"); err != nil {
		t.Fatalf("apply the workload: %v\n%s", err, out)
	}
}

// checkWorkload is the container lab's scenario 2 on the VMs, once the workload is deployed:
// one Running echo pod per VM, then from every pod: every pod on another node (pod to pod
// across nodes), the Service IP, and the Service by name through cluster DNS; and the NodePort
// through the last VM's address from outside the cluster (the lab's namespace).
func checkWorkload(t *testing.T, vms []*VM) {
	t.Helper()
	ctx := t.Context()
	master := vms[0]
	t0 := time.Now()
	var pods []pod
	waitFor(t, "one Running echo pod on every VM", readyTimeout(t), func() (bool, string) {
		ps, err := echoPods(t)
		if err != nil {
			return false, err.Error()
		}
		on := map[string]bool{}
		pods = pods[:0]
		for _, p := range ps {
			if p.Status.Phase == "Running" && p.Status.PodIP != "" {
				on[p.Spec.NodeName] = true
				pods = append(pods, p)
			}
		}
		return len(on) == len(vms), fmt.Sprintf("Running on %d of %d VMs (%d pods)", len(on), len(vms), len(ps))
	})
	timing(t, "echo pods Running on every VM", time.Since(t0))

	var svc struct {
		Spec struct{ ClusterIP string }
	}
	if err := get(ctx, "/api/v1/namespaces/default/services/echo", &svc); err != nil {
		t.Fatalf("service echo: %v", err)
	}
	svcIP := svc.Spec.ClusterIP
	var echo []lab.EchoPod
	for _, p := range pods {
		echo = append(echo, lab.EchoPod{Name: p.Metadata.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP})
	}
	t1 := time.Now()
	for _, err := range lab.EchoPaths(echo, svcIP, func(from lab.EchoPod, target string) error {
		_, err := master.Sh(ctx, "knode kubectl exec "+from.Name+" -- /agnhost connect --timeout=5s "+target)
		return err
	}) {
		t.Error(err)
	}
	timing(t, "pod-to-pod, Service IP and DNS checks from every pod", time.Since(t1))

	// The NodePort on the last VM's cluster address and on every VM's second network: a
	// node's NodePorts answer on each of its addresses.
	addrs := []string{vms[len(vms)-1].IP}
	for _, v := range vms {
		if v.Front != "" {
			addrs = append(addrs, v.Front)
		}
	}
	for _, a := range addrs {
		url := "http://" + a + ":" + strconv.Itoa(lab.EchoNodePort) + "/hostname"
		t2 := time.Now()
		waitFor(t, "NodePort "+url+" from the lab's namespace", 2*time.Minute, func() (bool, string) {
			code, body, err := theLab.Get(ctx, url, 5*time.Second)
			if err != nil {
				return false, err.Error()
			}
			return code == 200 && strings.HasPrefix(body, "echo-"), fmt.Sprintf("%d %q", code, body)
		})
		timing(t, "NodePort answers on "+a, time.Since(t2))
	}
}
