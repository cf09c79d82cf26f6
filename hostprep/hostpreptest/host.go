// Package hostpreptest provides an in-memory host for tests of hostprep and of the
// packages that drive it: every host touchpoint (netlink, iptables, sysctl, kernel
// modules, files, systemd, commands, facts, etcd) is a fake whose state renders as text, so
// a test compares the whole host before and after. Only tests import it, so none of it
// ships in knode.
package hostpreptest

import (
	"slices"
	"time"

	"knode.dev/knode/hostprep"
)

// The fakes implement hostprep's interfaces.
var (
	_ hostprep.Netlink   = (*Netlink)(nil)
	_ hostprep.IPTables  = (*IPTables)(nil)
	_ hostprep.Sysctl    = (*Sysctl)(nil)
	_ hostprep.Modules   = (*Modules)(nil)
	_ hostprep.Files     = (*Files)(nil)
	_ hostprep.Systemd   = (*Systemd)(nil)
	_ hostprep.Commander = (*Commander)(nil)
	_ hostprep.Probe     = (*Probe)(nil)
	_ hostprep.Pods      = (*Pods)(nil)
)

// Host is a host made of fakes, for tests here and in packages that call
// hostprep. String renders the whole host as text.
type Host struct {
	Net      *Netlink
	IPTables *IPTables
	Sysctl   *Sysctl
	Modules  *Modules
	Files    *Files
	Systemd  *Systemd
	Exec     *Commander
	Probe    *Probe
	// Etcd starts with no member: a test of a joining master adds the
	// running ones.
	Etcd *Etcd
	Pods *Pods
}

// New returns a plain host: lo only, empty built-in iptables chains,
// forwarding off, every kernel feature available but none loaded, no files,
// systemd running, root, amd64, cgroup v2, not in a container.
func New() *Host {
	return &Host{
		Net:      NewNetlink(),
		IPTables: NewIPTables(),
		Sysctl: &Sysctl{Values: map[string]string{
			"net.ipv4.ip_forward": "0",
		}},
		Modules: &Modules{Have: map[string]bool{}, Missing: map[string]bool{}},
		Files:   &Files{Data: map[string]fakeFile{}},
		Systemd: &Systemd{Units: map[string]*fakeUnit{}},
		Exec:    &Commander{},
		Etcd:    &Etcd{Down: map[string]bool{}},
		Pods:    &Pods{},
		Probe: &Probe{F: hostprep.Facts{OS: "linux", Arch: "amd64", CgroupVersion: 2, Systemd: true,
			Now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, Busy: map[int]bool{}},
	}
}

// Host returns the Host view of the fakes.
func (f *Host) Host() *hostprep.Host {
	return &hostprep.Host{Net: f.Net, IPTables: f.IPTables, Sysctl: f.Sysctl, Modules: f.Modules,
		Files: f.Files, Systemd: f.Systemd, Exec: f.Exec, Probe: f.Probe, Etcd: f.Etcd, Pods: f.Pods}
}

// String renders every part of the host, in sections.
func (f *Host) String() string {
	return "## net\n" + f.Net.String() + "## iptables\n" + f.IPTables.String() +
		"## sysctl\n" + f.Sysctl.String() + "## modules\n" + f.Modules.String() +
		"## files\n" + f.Files.String() + "## systemd\n" + f.Systemd.String()
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
