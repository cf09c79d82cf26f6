package roles

import (
	"net/netip"

	"knode.dev/knode/config"
)

func testPlan(masters int) config.Cluster {
	return config.Cluster{Name: "test", PodCIDR: netip.MustParsePrefix("10.10.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"),
		NodeCIDRMask: 24, Masters: masters, Network: "auto"}
}
