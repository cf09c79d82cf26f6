//go:build linux

package hostprep

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// linuxIPTables implements IPTables with coreos/go-iptables, which runs the
// iptables binary (so it acts in the calling thread's network namespace).
type linuxIPTables struct{ ipt *iptables.IPTables }

// NewLinuxIPTables returns the IPv4 iptables of the current network namespace.
func NewLinuxIPTables() (IPTables, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &linuxIPTables{ipt: ipt}, nil
}

// NewLinuxIP6Tables returns the IPv6 ip6tables of the current network
// namespace (knode writes no IPv6 rules; reset removes the kubelet's).
func NewLinuxIP6Tables() (IPTables, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("ip6tables: %w", err)
	}
	return &linuxIPTables{ipt: ipt}, nil
}

func (l *linuxIPTables) ChainExists(table, chain string) (bool, error) {
	return l.ipt.ChainExists(table, chain)
}
func (l *linuxIPTables) NewChain(table, chain string) error   { return l.ipt.NewChain(table, chain) }
func (l *linuxIPTables) ClearChain(table, chain string) error { return l.ipt.ClearChain(table, chain) }
func (l *linuxIPTables) DeleteChain(table, chain string) error {
	return l.ipt.ClearAndDeleteChain(table, chain)
}

func (l *linuxIPTables) ListChains(table string) ([]string, error) {
	return l.ipt.ListChains(table)
}

func (l *linuxIPTables) Rules(table, chain string) ([]string, error) {
	rs, err := l.ipt.List(table, chain)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		if !strings.HasPrefix(r, "-N ") && !strings.HasPrefix(r, "-P ") {
			out = append(out, r)
		}
	}
	return out, nil
}

func (l *linuxIPTables) Exists(table, chain string, rule ...string) (bool, error) {
	return l.ipt.Exists(table, chain, rule...)
}
func (l *linuxIPTables) Append(table, chain string, rule ...string) error {
	return l.ipt.Append(table, chain, rule...)
}
func (l *linuxIPTables) Insert(table, chain string, pos int, rule ...string) error {
	return l.ipt.Insert(table, chain, pos, rule...)
}
func (l *linuxIPTables) Delete(table, chain string, rule ...string) error {
	return l.ipt.Delete(table, chain, rule...)
}
