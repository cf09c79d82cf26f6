package manifests

import (
	"encoding/json"
	"net/netip"
)

// CNI configures pod networking on one node: the bridge plugin attaching
// pods to the node's bridge, host-local handing out the node's pod CIDR, and
// portmap for hostPort. containerd runs the loopback plugin by itself.
type CNI struct {
	// NetworkName names the network (e.g. "knode").
	NetworkName string
	Bridge      string
	// Subnet is the node's pod CIDR; the bridge holds its first address.
	Subnet netip.Prefix
	MTU    int
	// DataDir is where host-local records leases.
	DataDir string
}

// CNIConfig renders the CNI network configuration list.
func CNIConfig(c CNI) []byte {
	type m = map[string]any
	gw := c.Subnet.Masked().Addr().Next()
	conf := m{
		"cniVersion": "1.0.0",
		"name":       c.NetworkName,
		"plugins": []any{
			m{
				"type":        "bridge",
				"bridge":      c.Bridge,
				"isGateway":   true,
				"ipMasq":      false, // knode's iptables phase masquerades for the whole pod range
				"hairpinMode": true,
				"mtu":         c.MTU,
				"ipam": m{
					"type":    "host-local",
					"dataDir": c.DataDir,
					"ranges":  []any{[]any{m{"subnet": c.Subnet.String(), "gateway": gw.String()}}},
					"routes":  []any{m{"dst": "0.0.0.0/0"}},
				},
			},
			m{"type": "portmap", "capabilities": m{"portMappings": true}, "snat": true},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		panic(err) // only maps, strings, ints and bools
	}
	return append(b, '\n')
}
