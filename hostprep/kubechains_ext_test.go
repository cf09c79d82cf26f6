package hostprep_test

import (
	"context"
	"testing"

	"knode.dev/knode/hostprep"
	"knode.dev/knode/hostprep/hostpreptest"
)

// TestResetRemovesKubeChains checks that the iptables phase's reset removes
// kube-proxy's chains and the jumps to them, and leaves other rules alone.
func TestResetRemovesKubeChains(t *testing.T) {
	f := hostpreptest.New()
	ipt := f.IPTables
	before := ipt.String()
	for _, c := range []string{"KUBE-SERVICES", "KUBE-FIREWALL"} {
		if err := ipt.NewChain("filter", c); err != nil {
			t.Fatal(err)
		}
	}
	ipt.Append("filter", "KUBE-SERVICES", "-j", "KUBE-FIREWALL")
	ipt.Append("filter", "INPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")
	ipt.Append("filter", "INPUT", "-j", "ACCEPT")
	var iptables []hostprep.Phase
	for _, p := range hostprep.Phases() {
		if p.Name == hostprep.PhaseIPTables {
			iptables = append(iptables, p)
		}
	}
	cs, err := hostprep.Reset(context.Background(), f.Host(), hostprep.ResetOptions{Phases: iptables, KeepData: true})
	if err != nil || len(cs) != 1 {
		t.Fatalf("reset: %v %v", cs, err)
	}
	if ok, _ := ipt.Exists("filter", "INPUT", "-j", "ACCEPT"); !ok {
		t.Error("reset removed a rule that is not kube-proxy's")
	}
	ipt.Delete("filter", "INPUT", "-j", "ACCEPT")
	if got := ipt.String(); got != before {
		t.Errorf("after reset:\n%s\nwant:\n%s", got, before)
	}
}
