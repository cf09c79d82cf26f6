package manifests

import (
	"fmt"
	"strings"
)

// Unit is a systemd service unit.
type Unit struct {
	Description string
	// After, Wants, Requires and Before list other units.
	After, Wants, Requires, Before []string
	// Type is the service type (default simple).
	Type         string
	ExecStartPre []string
	ExecStart    []string
	// ExecStop runs when the unit stops; a leading "-" lets it fail.
	ExecStop    []string
	Environment []string
	// Extra holds further [Service] lines, e.g. "Delegate=yes".
	Extra []string
	// Restart policy (default always) and RestartSec (default 5).
	Restart         string
	RemainAfterExit bool
}

// OwnHeader opens every unit and configuration file knode writes: a unit
// starting with it is knode's, any other one the host's.
const OwnHeader = "# Written by knode; knode reset removes it.\n"

// UnitFile renders a unit installed for multi-user.target.
func UnitFile(u Unit) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	list := func(key string, v []string) {
		if len(v) > 0 {
			w("%s=%s", key, strings.Join(v, " "))
		}
	}
	w("%s", strings.TrimSuffix(OwnHeader, "\n"))
	w("[Unit]")
	w("Description=%s", u.Description)
	list("Wants", u.Wants)
	list("Requires", u.Requires)
	list("After", u.After)
	list("Before", u.Before)
	w("")
	w("[Service]")
	if u.Type != "" {
		w("Type=%s", u.Type)
	}
	for _, e := range u.Environment {
		w("Environment=%s", quoteArg(e))
	}
	for _, c := range u.ExecStartPre {
		w("ExecStartPre=%s", c)
	}
	w("ExecStart=%s", execLine(u.ExecStart))
	if len(u.ExecStop) > 0 {
		w("ExecStop=%s", execLine(u.ExecStop))
	}
	if u.RemainAfterExit {
		w("RemainAfterExit=yes")
	} else {
		restart := u.Restart
		if restart == "" {
			restart = "always"
		}
		w("Restart=%s", restart)
		w("RestartSec=5")
	}
	for _, x := range u.Extra {
		w("%s", x)
	}
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return []byte(b.String())
}

// execLine joins a command, one flag per continuation line when it has many.
func execLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quoteArg(a)
	}
	if len(q) <= 3 {
		return strings.Join(q, " ")
	}
	return q[0] + " \\\n  " + strings.Join(q[1:], " \\\n  ")
}

// quoteArg quotes an argument for systemd when it holds spaces or quotes.
func quoteArg(a string) string {
	if strings.ContainsAny(a, " \t\"'\\") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
	}
	return a
}

// NodeUnits holds what the units of a node need to know.
type NodeUnits struct {
	// BinDir holds the payload binaries (containerd, kubelet, kube-proxy, runc, ...).
	BinDir string
	// ContainerdConfig, KubeletConfig, KubeletKubeconfig, KubeProxyConfig are file paths.
	ContainerdConfig, KubeletConfig, KubeletKubeconfig, KubeProxyConfig string
	NodeName                                                            string
	NodeIP                                                              string
	// Knode is the knode binary and the arguments of its agent.
	Knode []string
}

// ContainerdUnit renders containerd.service. It is ordered before
// kubepods.slice, the kubelet's (systemd cgroup driver), so that at shutdown
// it stops after every container: containerd reads the containers' output,
// and a container still logging once it is gone blocks on the full pipe (the
// apiserver did, until systemd killed it 90 s later).
func ContainerdUnit(n NodeUnits) []byte {
	return UnitFile(Unit{
		Description: "containerd container runtime (knode)",
		After:       []string{"network.target", "local-fs.target", "knode-rshared.service"},
		Before:      []string{"kubepods.slice"},
		Type:        "notify",
		Environment: []string{"PATH=" + n.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		ExecStart:   []string{n.BinDir + "/containerd", "--config", n.ContainerdConfig},
		Extra: []string{"Delegate=yes", "KillMode=process", "LimitNOFILE=1048576", "LimitNPROC=infinity",
			"LimitCORE=infinity", "TasksMax=infinity", "OOMScoreAdjust=-999"},
	})
}

// KubeletUnit renders kubelet.service.
func KubeletUnit(n NodeUnits) []byte {
	return UnitFile(Unit{
		Description: "Kubernetes kubelet (knode)",
		Wants:       []string{"containerd.service"},
		After:       []string{"containerd.service"},
		ExecStart: []string{n.BinDir + "/kubelet", "--config=" + n.KubeletConfig, "--kubeconfig=" + n.KubeletKubeconfig,
			"--hostname-override=" + n.NodeName, "--node-ip=" + n.NodeIP},
		Extra: []string{"LimitNOFILE=1048576"},
	})
}

// KubeProxyUnit renders kube-proxy.service.
func KubeProxyUnit(n NodeUnits) []byte {
	return UnitFile(Unit{
		Description: "Kubernetes kube-proxy (knode)",
		After:       []string{"network-online.target"},
		Wants:       []string{"network-online.target"},
		ExecStart:   []string{n.BinDir + "/kube-proxy", "--config=" + n.KubeProxyConfig},
		Extra:       []string{"LimitNOFILE=1048576"},
	})
}

// KnodeUnit renders knode.service, the agent.
func KnodeUnit(n NodeUnits) []byte {
	return UnitFile(Unit{
		Description: "knode agent: cluster membership and host configuration",
		After:       []string{"network-online.target"},
		Wants:       []string{"network-online.target"},
		ExecStart:   n.Knode,
		Extra:       []string{"KillMode=process"},
	})
}

// ShutdownUnit renders knode-shutdown.service, which does nothing until
// the system shuts down. Ordered after containerd, the pods' slices and
// knode.service (the node-local apiserver endpoint the controllers use), it
// is stopped before them: its stop waits for the kubelet to go, then stops
// the control plane in order (hostprep.ShutdownControlPlane) while etcd
// still runs. Nothing waits for it at boot.
func ShutdownUnit(n NodeUnits) []byte {
	return UnitFile(Unit{
		Description:     "knode: stop the control plane in order at shutdown (scheduler and controller-manager, then the apiserver, before etcd)",
		After:           []string{"containerd.service", "kubepods.slice", "knode.service"},
		Type:            "oneshot",
		ExecStart:       []string{"/bin/true"},
		ExecStop:        []string{"-" + n.Knode[0], "shutdown-hook"},
		RemainAfterExit: true,
		Extra:           []string{"TimeoutStopSec=60"},
	})
}

// RSharedUnit renders knode-rshared.service, which makes / a shared mount
// before containerd starts: systemd skips that inside containers, and
// bidirectional mounts need it.
func RSharedUnit() []byte {
	return UnitFile(Unit{
		Description:     "Make / a shared mount for containerd (knode, in containers)",
		Before:          []string{"containerd.service"},
		Type:            "oneshot",
		ExecStart:       []string{"/bin/mount", "--make-rshared", "/"},
		RemainAfterExit: true,
	})
}
