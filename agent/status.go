package agent

import (
	"slices"
	"time"

	"knode.dev/knode/apilb"
	"knode.dev/knode/gossip"
)

// Status is what `knode status --json` prints: the cluster's plan, this node's
// name and every member as this node sees it. It never carries secrets.
type Status struct {
	Cluster ClusterStatus  `json:"cluster"`
	Self    string         `json:"self"`
	Members []MemberStatus `json:"members"`
	// Refused counts the gossip records and letters this node refused
	// (bad signature, invalid values, unknown author), by the author they
	// named: a non-zero count means a misbehaving or hostile peer.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// Healthy says every member is alive, placed and passes every check
	// of its health summary (`knode status` exits non-zero otherwise).
	Healthy bool `json:"healthy"`
	// APIEndpoint is the node-local apiserver endpoint's view of each
	// master's apiserver (configured nodes only).
	APIEndpoint []apilb.Status `json:"apiEndpoint,omitempty"`
}

// ClusterStatus is the cluster's identity and ranges.
type ClusterStatus struct {
	Name         string `json:"name"`
	PodCIDR      string `json:"podCIDR"`
	ServiceCIDR  string `json:"serviceCIDR"`
	NodeCIDRMask int    `json:"nodeCIDRMask"`
	Masters      int    `json:"masters"`
	Network      string `json:"network"`
	TaintMasters bool   `json:"taintMasters,omitempty"`
}

// MemberStatus is one node.
type MemberStatus struct {
	Name     string    `json:"name"`
	Address  string    `json:"address"`
	State    string    `json:"state"`
	Roles    []string  `json:"roles"`
	PodCIDR  string    `json:"podCIDR"`
	Version  string    `json:"version"`
	LastSeen time.Time `json:"lastSeen"`
	Error    string    `json:"error,omitempty"`
	// Health is the member's last gossiped health summary; Problems say
	// what keeps it from being Healthy, Warnings what will soon.
	Health   *HealthStatus `json:"health,omitempty"`
	Healthy  bool          `json:"healthy"`
	Problems []string      `json:"problems,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
}

// Status reports the cluster as this node sees it.
func (a *Agent) Status() Status {
	snap := a.state.Snapshot()
	c := a.cluster
	st := Status{
		Cluster: ClusterStatus{Name: c.Name, PodCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(),
			NodeCIDRMask: c.NodeCIDRMask, Masters: c.Masters, Network: c.Network, TaintMasters: c.TaintMasters},
		Self:    a.id.Name,
		Members: []MemberStatus{},
	}
	seen := map[string]gossip.Member{}
	for _, m := range a.g.Members() {
		seen[m.Name] = m
	}
	for name, as := range snap.Assignments {
		m, ok := seen[name]
		if !ok {
			m = gossip.Member{State: gossip.StateDead}
		}
		if (as.Released || snap.Nodes[name].Removed) && m.State != gossip.StateAlive {
			continue // reset: no longer a member
		}
		ms := MemberStatus{Name: name, Address: gossip.HostPort(as.Addr, as.Port), State: m.State,
			Roles: []string{}, Version: m.Version, LastSeen: m.LastSeen.UTC().Truncate(time.Second), Error: as.Error}
		if as.Active() {
			ms.PodCIDR = as.PodCIDR.String()
			ms.Roles = []string{"worker"}
			if as.Seat >= 0 {
				ms.Roles = []string{"master"}
			}
		}
		st.Members = append(st.Members, ms)
	}
	for name, m := range seen {
		if _, ok := snap.Assignments[name]; !ok && m.State == gossip.StateAlive {
			// Admitted to gossip, not (yet) given a place: a joiner.
			st.Members = append(st.Members, MemberStatus{Name: name, Address: m.Addr.String(), State: m.State,
				Roles: []string{}, Version: m.Version, LastSeen: m.LastSeen.UTC().Truncate(time.Second)})
		}
	}
	st.APIEndpoint = a.EndpointStatus()
	if r := a.g.Rejected(); len(r) > 0 {
		st.Refused = r
	}
	slices.SortFunc(st.Members, func(x, y MemberStatus) int {
		switch {
		case x.Name < y.Name:
			return -1
		case x.Name > y.Name:
			return 1
		}
		return 0
	})
	st.judge(snap.Health, time.Now())
	return st
}
