package config

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func good() Cluster {
	return Cluster{Name: "knode", PodCIDR: netip.MustParsePrefix(DefaultPodCIDR), ServiceCIDR: netip.MustParsePrefix(DefaultServiceCIDR),
		NodeCIDRMask: DefaultNodeCIDRMask, Masters: DefaultMasters, Network: DefaultNetwork}
}

func TestClusterValidation(t *testing.T) {
	if err := good().Validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Cluster)
		want string // part of the message: the bad value
	}{
		{"overlapping ranges", func(c *Cluster) { c.ServiceCIDR = netip.MustParsePrefix("10.10.128.0/20") }, "overlaps --service-cidr 10.10.128.0/20"},
		{"mask not longer than pod prefix", func(c *Cluster) { c.NodeCIDRMask = 16 }, "--node-cidr-mask 16"},
		{"mask shorter than pod prefix", func(c *Cluster) { c.NodeCIDRMask = 8 }, "--node-cidr-mask 8"},
		{"range too small for the masters", func(c *Cluster) {
			c.PodCIDR, c.NodeCIDRMask, c.Masters = netip.MustParsePrefix("10.10.0.0/23"), 24, 3
		}, "holds only 2 node subnets"},
		{"masters 2", func(c *Cluster) { c.Masters = 2 }, "--masters 2"},
		{"masters 0", func(c *Cluster) { c.Masters = 0 }, "--masters 0"},
		{"host bits", func(c *Cluster) { c.PodCIDR = netip.MustParsePrefix("10.10.1.0/16") }, "did you mean 10.10.0.0/16"},
		{"ipv6", func(c *Cluster) { c.PodCIDR = netip.MustParsePrefix("fd00::/64") }, "only IPv4"},
		{"bad name", func(c *Cluster) { c.Name = "My_Cluster" }, `"My_Cluster"`},
		{"bad network", func(c *Cluster) { c.Network = "flannel" }, `"flannel"`},
		{"service range too big", func(c *Cluster) { c.ServiceCIDR = netip.MustParsePrefix("172.16.0.0/8").Masked() }, "--service-cidr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message spans lines: %q", err)
			}
		})
	}
}

func TestParseHostPort(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:7000": "127.0.0.1:7000", "10.0.0.1": "10.0.0.1:7946", "localhost:7001": "127.0.0.1:7001"} {
		got, err := ParseHostPort("--bind", in, 7946)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"1.2.3.4:99999", "1.2.3.4:x", "no such host.invalid:1", "1.2.3:4", "1.2.3.4:0"} {
		if _, err := ParseHostPort("--bind", in, 7946); err == nil || !IsUsage(err) || !strings.Contains(err.Error(), in) {
			t.Errorf("%q: err = %v, want a usage error naming it", in, err)
		}
	}
}

func TestTakenPortIsRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := netip.MustParseAddrPort(l.Addr().String())
	err = CheckPortFree("--bind", ap)
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("err = %v", err)
	}
}

func TestNodeValidation(t *testing.T) {
	n := Node{Name: "node-1", DataDir: "/var/lib/knode"}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Node{{Name: "Node_1", DataDir: "/x"}, {Name: "n", DataDir: "relative"}, {Name: "n", DataDir: "/x", Advertise: netip.MustParseAddrPort("0.0.0.0:1")}} {
		if err := bad.Validate(); !IsUsage(err) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
}
