// Package config holds the cluster-wide settings chosen at `knode init` and the
// per-node settings of one machine, with their defaults and validation.
//
// Every check runs before anything is written, and every failure is a
// UsageError naming the bad value and the fix.
package config

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Defaults, from the from-scratch guide.
const (
	DefaultClusterName  = "knode"
	DefaultPodCIDR      = "10.10.0.0/16"
	DefaultServiceCIDR  = "10.0.0.0/16"
	DefaultNodeCIDRMask = 24
	DefaultMasters      = 1
	DefaultBind         = "0.0.0.0:7946"
	DefaultDataDir      = "/var/lib/knode"
	DefaultNetwork      = "auto"
)

// Cluster is the identity and address plan of a cluster. It is created by
// `knode init` and never changes afterwards.
type Cluster struct {
	Name         string       `json:"name"`
	PodCIDR      netip.Prefix `json:"podCIDR"`
	ServiceCIDR  netip.Prefix `json:"serviceCIDR"`
	NodeCIDRMask int          `json:"nodeCIDRMask"`
	Masters      int          `json:"masters"`
	Network      string       `json:"network"`
	// TaintMasters keeps ordinary pods off masters
	// (node-role.kubernetes.io/control-plane:NoSchedule); off by default, so
	// that a small cluster's masters run workloads too.
	TaintMasters bool `json:"taintMasters,omitempty"`
}

var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// NodeCapacity is how many node subnets the pod range holds.
func (c Cluster) NodeCapacity() int {
	bits := c.NodeCIDRMask - c.PodCIDR.Bits()
	if bits >= 30 {
		return 1 << 30
	}
	return 1 << bits
}

// Validate checks the cluster plan as a whole.
func (c Cluster) Validate() error {
	if !clusterNameRE.MatchString(c.Name) {
		return Usagef("--cluster-name %q is not a valid name: use lower-case letters, digits and '-', at most 63 characters", c.Name)
	}
	if err := checkRange("--pod-cidr", c.PodCIDR); err != nil {
		return err
	}
	if err := checkRange("--service-cidr", c.ServiceCIDR); err != nil {
		return err
	}
	if c.PodCIDR.Overlaps(c.ServiceCIDR) {
		return Usagef("--pod-cidr %s overlaps --service-cidr %s: choose ranges that do not overlap (defaults: %s and %s)",
			c.PodCIDR, c.ServiceCIDR, DefaultPodCIDR, DefaultServiceCIDR)
	}
	if c.ServiceCIDR.Bits() < 12 || c.ServiceCIDR.Bits() > 28 {
		return Usagef("--service-cidr %s: the prefix must be between /12 and /28 (the 10th address is cluster DNS)", c.ServiceCIDR)
	}
	if c.NodeCIDRMask <= c.PodCIDR.Bits() || c.NodeCIDRMask > 28 {
		return Usagef("--node-cidr-mask %d must be longer than the pod range's /%d and at most 28 (e.g. --node-cidr-mask %d)",
			c.NodeCIDRMask, c.PodCIDR.Bits(), min(c.PodCIDR.Bits()+8, 28))
	}
	switch c.Masters {
	case 1, 3, 5:
	default:
		return Usagef("--masters %d: use 1, 3 or 5 (an odd etcd quorum)", c.Masters)
	}
	if c.NodeCapacity() < c.Masters {
		return Usagef("--pod-cidr %s with --node-cidr-mask %d holds only %d node subnets, fewer than --masters %d: use a larger pod range or a longer mask",
			c.PodCIDR, c.NodeCIDRMask, c.NodeCapacity(), c.Masters)
	}
	switch c.Network {
	case "auto", "routed", "vxlan":
	default:
		return Usagef("--network %q: use auto, routed or vxlan", c.Network)
	}
	return nil
}

func checkRange(flag string, p netip.Prefix) error {
	if !p.IsValid() {
		return Usagef("%s is missing: give an IPv4 range such as 10.10.0.0/16", flag)
	}
	if !p.Addr().Is4() {
		return Usagef("%s %s: only IPv4 ranges are supported", flag, p)
	}
	if p.Masked() != p {
		return Usagef("%s %s has host bits set: did you mean %s?", flag, p, p.Masked())
	}
	return nil
}

// ParsePrefix parses a CIDR flag value, naming the flag on error.
func ParsePrefix(flag, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, Usagef("%s %q is not a CIDR range: write it like 10.10.0.0/16", flag, s)
	}
	return p, nil
}

// String is a one-line summary of the plan.
func (c Cluster) String() string {
	taint := ""
	if c.TaintMasters {
		taint = ", masters tainted"
	}
	return fmt.Sprintf("cluster %s: pods %s (/%d per node), services %s, %d master(s)%s, network %s",
		c.Name, c.PodCIDR, c.NodeCIDRMask, c.ServiceCIDR, c.Masters, taint, c.Network)
}
