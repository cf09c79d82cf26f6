package hostprep

import (
	"context"
	"strings"
	"testing"
)

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`)
	want := []string{"-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", "KUBE-PROXY-FIREWALL"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}

func TestResetRemovesKubeChains(t *testing.T) {
	f := NewFake()
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
	cs, err := planKubeChainsReset(&Env{Host: f.Host()})
	if err != nil || len(cs) != 1 {
		t.Fatalf("plan: %v %v", cs, err)
	}
	if err := cs[0].apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	ipt.Delete("filter", "INPUT", "-j", "ACCEPT")
	if got := ipt.String(); got != before {
		t.Errorf("after reset:\n%s\nwant:\n%s", got, before)
	}
}
