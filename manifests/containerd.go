package manifests

import (
	"fmt"
	"strings"
)

// Containerd configures containerd 2.x for the kubelet.
type Containerd struct {
	// Root and State are containerd's directories.
	Root, State string
	// Socket is the CRI endpoint's path.
	Socket string
	// PauseImage is the sandbox image, imported from the payload.
	PauseImage string
	// SystemdCgroup must match the kubelet's cgroupDriver.
	SystemdCgroup bool
	// RestrictOOMScoreAdj is needed when the node itself runs in a
	// container that may not lower oom_score_adj.
	RestrictOOMScoreAdj bool
	// RuncPath is the runc binary from the payload.
	RuncPath string
	// CNIBinDir and CNIConfDir locate the CNI plugins and configuration.
	CNIBinDir, CNIConfDir string
}

// ContainerdConfig renders /etc/containerd/config.toml (config version 3).
func ContainerdConfig(c Containerd) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by knode; knode reset removes it.")
	w("version = 3")
	w("root = %q", c.Root)
	w("state = %q", c.State)
	w("")
	w("[grpc]")
	w("  address = %q", c.Socket)
	w("")
	w("[plugins.'io.containerd.cri.v1.images']")
	w("  snapshotter = \"overlayfs\"")
	w("")
	w("[plugins.'io.containerd.cri.v1.images'.pinned_images]")
	w("  sandbox = %q", c.PauseImage)
	w("")
	w("[plugins.'io.containerd.cri.v1.runtime']")
	w("  restrict_oom_score_adj = %t", c.RestrictOOMScoreAdj)
	w("")
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd]")
	w("  default_runtime_name = \"runc\"")
	w("")
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]")
	w("  runtime_type = \"io.containerd.runc.v2\"")
	w("")
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]")
	w("  BinaryName = %q", c.RuncPath)
	w("  SystemdCgroup = %t", c.SystemdCgroup)
	w("")
	w("[plugins.'io.containerd.cri.v1.runtime'.cni]")
	w("  bin_dirs = [%q]", c.CNIBinDir)
	w("  conf_dir = %q", c.CNIConfDir)
	return []byte(b.String())
}
