package hostprep

import (
	"context"
	"fmt"
	"strings"
)

// Chains knode owns; reset deletes them and their hooks.
const (
	NATChain     = "KNODE-POSTROUTING"
	ForwardChain = "KNODE-FORWARD"
	InputChain   = "KNODE-INPUT"
)

// ipChain is one knode-owned chain, the built-in chain it hangs from, and
// its rules.
type ipChain struct {
	table, builtin, chain, comment string
	rules                          [][]string
}

func (c ipChain) hook() []string {
	return []string{"-m", "comment", "--comment", c.comment, "-j", c.chain}
}

// ipChains returns knode's chains for s in network mode (Routed or VXLAN),
// or only their names when s is nil (reset). The rules are as narrow as the
// cluster allows (firewall.go).
func ipChains(s *Spec, mode NetworkMode) []ipChain {
	cs := []ipChain{
		{table: "nat", builtin: "POSTROUTING", chain: NATChain, comment: "knode: masquerade traffic leaving the pod range"},
		{table: "filter", builtin: "FORWARD", chain: ForwardChain, comment: "knode: forward pod traffic"},
		{table: "filter", builtin: "INPUT", chain: InputChain, comment: "knode: VXLAN and etcd from cluster members only"},
	}
	if s != nil {
		cs[0].rules, cs[1].rules, cs[2].rules = masqueradeRules(s), forwardRules(s), inputRules(s, mode)
	}
	return cs
}

func iptablesPhase() Phase {
	return Phase{
		Name: PhaseIPTables,
		Description: "masquerade pod traffic leaving the pod range, forward pod traffic only from pods, members and services, " +
			"take VXLAN and etcd traffic only from members, in knode-owned chains",
		Plan:      planIPTables,
		PlanReset: planIPTablesReset,
	}
}

func planIPTables(ctx context.Context, e *Env) ([]Change, error) {
	ipt := e.Host.IPTables
	var cs []Change
	n, err := inspectNet(e)
	if err != nil {
		return nil, err
	}
	for _, c := range ipChains(e.Spec, n.mode) {
		ok, err := ipt.ChainExists(c.table, c.chain)
		if err != nil {
			return nil, fmt.Errorf("check chain %s/%s: %w", c.table, c.chain, err)
		}
		current := ok
		if ok {
			current, err = chainHolds(ipt, c)
			if err != nil {
				return nil, err
			}
		} else {
			cs = append(cs, change(fmt.Sprintf("create chain %s/%s", c.table, c.chain), func(context.Context) error {
				if err := ipt.NewChain(c.table, c.chain); err != nil {
					return fmt.Errorf("create chain %s/%s: %w", c.table, c.chain, err)
				}
				return nil
			}))
		}
		if !current {
			if ok {
				cs = append(cs, change(fmt.Sprintf("flush chain %s/%s", c.table, c.chain), func(context.Context) error {
					return ipt.ClearChain(c.table, c.chain)
				}))
			}
			for _, r := range c.rules {
				cs = append(cs, change(fmt.Sprintf("append to %s/%s: %s", c.table, c.chain, strings.Join(r, " ")), func(context.Context) error {
					if err := ipt.Append(c.table, c.chain, r...); err != nil {
						return fmt.Errorf("append to %s/%s %q: %w", c.table, c.chain, strings.Join(r, " "), err)
					}
					return nil
				}))
			}
		}
		hooked, err := ipt.Exists(c.table, c.builtin, c.hook()...)
		if err != nil && ok {
			return nil, fmt.Errorf("check hook %s/%s -> %s: %w", c.table, c.builtin, c.chain, err)
		}
		if !hooked {
			cs = append(cs, change(fmt.Sprintf("hook %s/%s -> %s", c.table, c.builtin, c.chain), func(context.Context) error {
				if err := ipt.Insert(c.table, c.builtin, 1, c.hook()...); err != nil {
					return fmt.Errorf("hook %s/%s -> %s: %w", c.table, c.builtin, c.chain, err)
				}
				return nil
			}))
		}
	}
	return cs, nil
}

// chainHolds reports whether the chain holds exactly c's rules.
func chainHolds(ipt IPTables, c ipChain) (bool, error) {
	rules, err := ipt.Rules(c.table, c.chain)
	if err != nil {
		return false, fmt.Errorf("list chain %s/%s: %w", c.table, c.chain, err)
	}
	if len(rules) != len(c.rules) {
		return false, nil
	}
	for _, r := range c.rules {
		ok, err := ipt.Exists(c.table, c.chain, r...)
		if err != nil {
			return false, fmt.Errorf("check rule in %s/%s: %w", c.table, c.chain, err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func planIPTablesReset(ctx context.Context, e *Env) ([]Change, error) {
	ipt := e.Host.IPTables
	cs, err := planKubeChainsReset(e)
	if err != nil {
		return nil, err
	}
	for _, c := range ipChains(nil, "") {
		ok, err := ipt.ChainExists(c.table, c.chain)
		if err != nil {
			return nil, fmt.Errorf("check chain %s/%s: %w", c.table, c.chain, err)
		}
		if !ok {
			continue
		}
		cs = append(cs, change(fmt.Sprintf("unhook %s/%s -> %s and delete the chain", c.table, c.builtin, c.chain), func(context.Context) error {
			for {
				hooked, err := ipt.Exists(c.table, c.builtin, c.hook()...)
				if err != nil {
					return fmt.Errorf("check hook %s/%s -> %s: %w", c.table, c.builtin, c.chain, err)
				}
				if !hooked {
					break
				}
				if err := ipt.Delete(c.table, c.builtin, c.hook()...); err != nil {
					return fmt.Errorf("unhook %s/%s -> %s: %w", c.table, c.builtin, c.chain, err)
				}
			}
			if err := ipt.DeleteChain(c.table, c.chain); err != nil {
				return fmt.Errorf("delete chain %s/%s: %w", c.table, c.chain, err)
			}
			return nil
		}))
	}
	return cs, nil
}
