package hostprep

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// kube-proxy and the kubelet create chains of their own (KUBE-SERVICES,
// KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...) and jumps to them from the built-in
// chains. They are not knode's, but knode started those programs, so reset
// removes them too: otherwise a reset host keeps a firewall it never asked
// for, the commonest complaint about other installers' uninstall.

// kubeChainTables are the tables kube-proxy and the kubelet write.
var kubeChainTables = []string{"filter", "nat", "mangle"}

func isKubeChain(c string) bool { return strings.HasPrefix(c, "KUBE-") }

// planKubeChainsReset removes every KUBE-* chain and every jump to one.
func planKubeChainsReset(e *Env) ([]Change, error) {
	cs := planKubeChains(e.Host.IPTables, "")
	if e.Host.IP6Tables != nil {
		cs = append(cs, planKubeChains(e.Host.IP6Tables, "IPv6 ")...)
	}
	return cs, nil
}

func planKubeChains(ipt IPTables, family string) []Change {
	var cs []Change
	for _, table := range kubeChainTables {
		chains, err := ipt.ListChains(table)
		if err != nil {
			continue // the kernel has no such table
		}
		var kube []string
		for _, c := range chains {
			if isKubeChain(c) {
				kube = append(kube, c)
			}
		}
		if len(kube) == 0 {
			continue
		}
		table := table
		cs = append(cs, change(fmt.Sprintf("remove kube-proxy's and the kubelet's chains in %s%s (%s)", family, table, strings.Join(kube, ", ")), func(context.Context) error {
			for _, c := range chains {
				if isKubeChain(c) {
					continue
				}
				rules, err := ipt.Rules(table, c)
				if err != nil {
					return fmt.Errorf("list %s/%s: %w", table, c, err)
				}
				for _, r := range slices.Backward(rules) {
					spec := splitRule(r)
					if len(spec) < 2 || spec[0] != "-A" || !jumpsToKube(spec) {
						continue
					}
					if err := ipt.Delete(table, c, spec[2:]...); err != nil {
						return fmt.Errorf("delete %q from %s/%s: %w", r, table, c, err)
					}
				}
			}
			for _, c := range kube { // empty first: they jump to each other
				if err := ipt.ClearChain(table, c); err != nil {
					return fmt.Errorf("flush %s/%s: %w", table, c, err)
				}
			}
			for _, c := range kube {
				if err := ipt.DeleteChain(table, c); err != nil {
					return fmt.Errorf("delete chain %s/%s: %w", table, c, err)
				}
			}
			return nil
		}))
	}
	return cs
}

func jumpsToKube(spec []string) bool {
	for i, a := range spec {
		if (a == "-j" || a == "-g") && i+1 < len(spec) && isKubeChain(spec[i+1]) {
			return true
		}
	}
	return false
}

// splitRule splits an iptables -S line into arguments, honouring the double
// quotes iptables puts around comments.
func splitRule(r string) []string {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for i := 0; i < len(r); i++ {
		ch := r[i]
		switch {
		case ch == '\\' && quoted && i+1 < len(r):
			i++
			cur.WriteByte(r[i])
		case ch == '"':
			quoted, have = !quoted, true
		case ch == ' ' && !quoted:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(ch)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
