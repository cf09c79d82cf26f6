package hostprep

import (
	"strconv"
)

// The rules of knode's chains, each as narrow as the cluster allows:
//   - masquerade only what leaves the pod range from a pod, to an address
//     that is not this host's;
//   - forward to pods only replies, Service traffic kube-proxy translated,
//     traffic from pods, and traffic from the members' own addresses; drop
//     any other packet for a pod (a machine on the LAN that is not a member
//     cannot reach a pod by routing through a node);
//   - take VXLAN packets only from members (VXLAN mode);
//   - on masters, take etcd's client and peer ports only from the other
//     masters and from this host (its apiserver).
// Membership changes rewrite the chains (the iptables phase is one of the
// network phases the agent reapplies).

// masqueradeRules: the guide's rule, limited to pod sources.
func masqueradeRules(s *Spec) [][]string {
	pods := s.Cluster.PodCIDR.String()
	return [][]string{{"-s", pods, "!", "-d", pods, "-m", "addrtype", "!", "--dst-type", "LOCAL", "-j", "MASQUERADE"}}
}

func forwardRules(s *Spec) [][]string {
	pods := s.Cluster.PodCIDR.String()
	rs := [][]string{
		{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"},
		{"-s", pods, "-j", "ACCEPT"},
	}
	for _, n := range members(s) {
		rs = append(rs, []string{"-s", hostAddr(n), "-d", pods, "-j", "ACCEPT"})
	}
	return append(rs, []string{"-d", pods, "-j", "DROP"})
}

func inputRules(s *Spec, mode NetworkMode) [][]string {
	var rs [][]string
	if mode == VXLAN {
		port := strconv.Itoa(s.Cluster.VXLANPort)
		for _, p := range s.Peers {
			rs = append(rs, []string{"-p", "udp", "-s", hostAddr(p), "--dport", port, "-j", "ACCEPT"})
		}
		rs = append(rs, []string{"-p", "udp", "--dport", port, "-j", "DROP"})
	}
	if s.Self.Master {
		const etcdPorts = "2379:2380"
		rs = append(rs, []string{"-i", "lo", "-p", "tcp", "--dport", etcdPorts, "-j", "ACCEPT"})
		for _, m := range s.Masters() {
			rs = append(rs, []string{"-p", "tcp", "-s", hostAddr(m), "--dport", etcdPorts, "-j", "ACCEPT"})
		}
		rs = append(rs, []string{"-p", "tcp", "--dport", etcdPorts, "-j", "DROP"})
	}
	return rs
}

// members is every node of the cluster, this one first.
func members(s *Spec) []Node { return append([]Node{s.Self}, s.Peers...) }

func hostAddr(n Node) string { return n.Address.String() + "/32" }
