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

// cniConfList is a CNI network configuration list (CNI spec 1.0.0) with
// the bridge and portmap plugins; fields in byte order of their names, as
// written.
type cniConfList struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

type cniBridge struct {
	Bridge      string  `json:"bridge"`
	HairpinMode bool    `json:"hairpinMode"`
	IPMasq      bool    `json:"ipMasq"`
	IPAM        cniIPAM `json:"ipam"`
	IsGateway   bool    `json:"isGateway"`
	MTU         int     `json:"mtu"`
	Type        string  `json:"type"`
}

type cniIPAM struct {
	DataDir string       `json:"dataDir"`
	Ranges  [][]cniRange `json:"ranges"`
	Routes  []cniRoute   `json:"routes"`
	Type    string       `json:"type"`
}

type cniRange struct {
	Gateway string `json:"gateway"`
	Subnet  string `json:"subnet"`
}

type cniRoute struct {
	Dst string `json:"dst"`
}

type cniPortmap struct {
	Capabilities struct {
		PortMappings bool `json:"portMappings"`
	} `json:"capabilities"`
	SNAT bool   `json:"snat"`
	Type string `json:"type"`
}

// CNIConfig renders the CNI network configuration list.
func CNIConfig(c CNI) []byte {
	gw := c.Subnet.Masked().Addr().Next()
	bridge := cniBridge{
		Bridge:      c.Bridge,
		HairpinMode: true,
		IPAM: cniIPAM{
			DataDir: c.DataDir,
			Ranges:  [][]cniRange{{{Gateway: gw.String(), Subnet: c.Subnet.String()}}},
			Routes:  []cniRoute{{Dst: "0.0.0.0/0"}},
			Type:    "host-local",
		},
		IPMasq:    false, // knode's iptables phase masquerades for the whole pod range
		IsGateway: true,
		MTU:       c.MTU,
		Type:      "bridge",
	}
	portmap := cniPortmap{SNAT: true, Type: "portmap"}
	portmap.Capabilities.PortMappings = true
	b, err := json.MarshalIndent(cniConfList{CNIVersion: "1.0.0", Name: c.NetworkName, Plugins: []any{bridge, portmap}}, "", "  ")
	if err != nil {
		panic(err) // strings, ints and bools only
	}
	return append(b, '\n')
}
