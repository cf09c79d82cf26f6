//go:build linux

package hostprep

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// NewLinuxHost returns the real host. Files live under root ("/" for the
// machine itself). Network objects, sysctls and iptables are those of the
// calling thread's network namespace; systemd is reached over D-Bus on
// first use.
func NewLinuxHost(root string) (*Host, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	ipt, err := NewLinuxIPTables()
	if err != nil {
		return nil, err
	}
	ip6, err := NewLinuxIP6Tables()
	if err != nil {
		ip6 = nil // no IPv6 firewall on this host: nothing to clean there
	}
	return &Host{
		IP6Tables: ip6,
		Net:       NewLinuxNetlink(h),
		IPTables:  ipt,
		Sysctl:    procSysctl{dir: "/proc/sys"},
		Modules:   kernelModules{},
		Files:     RootFiles{Root: root},
		Systemd:   &dbusSystemd{},
		Exec:      osCommander{},
		Probe:     linuxProbe{root: root},
		Etcd:      EtcdClient{Root: root},
		Pods:      criPods{socket: ContainerdSocket},
	}, nil
}
