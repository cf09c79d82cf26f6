package hostprep

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"knode.dev/knode/manifests"
)

// unitFile is one systemd unit knode installs, with the files whose change
// means the service must restart.
type unitFile struct {
	name    string
	data    []byte
	configs []string
	// noRestart: never restarted by the phase, only started if inactive
	// (knode.service: the agent may be the caller).
	noRestart bool
}

// unitNames lists every unit the units phase may install, for reset.
func unitNames() []string {
	return []string{"kube-proxy.service", "kubelet.service", "knode-shutdown.service", "knode.service"}
}

// nodeUnit fills the paths every unit renders from.
func nodeUnit(s *Spec) manifests.NodeUnits {
	return manifests.NodeUnits{
		BinDir: s.Payload.BinDir, ContainerdConfig: ContainerdConfPath, KubeletConfig: KubeletConfigPath,
		KubeletKubeconfig: KubeletKubeconfig, KubeProxyConfig: KubeProxyConfigPath,
		NodeName: s.Self.Name, NodeIP: s.Self.Address.String(),
		Knode: append([]string{s.KnodeBinary}, s.KnodeArgs...),
	}
}

func nodeUnits(e *Env, f Facts) ([]unitFile, map[string][]byte) {
	s := e.Spec
	n := nodeUnit(s)
	configs := map[string][]byte{
		KubeletConfigPath: manifests.KubeletConfig(manifests.Kubelet{
			ServiceCIDR: s.Cluster.ServiceCIDR, ClusterDomain: s.Cluster.Domain, PodCIDR: s.Self.PodCIDR,
			MaxPods: MaxPods(s.Cluster.NodeCIDRMask), CgroupDriver: cgroupDriver(s, f), CgroupV1: f.CgroupVersion == 1,
			ClientCAFile: path.Join(PKIDir, manifests.CACert), StaticPodPath: ManifestsDir,
			RuntimeEndpoint: "unix://" + ContainerdSocket, ResolvConf: resolvConf(e.Host.Files),
			TLSCertFile: path.Join(PKIDir, manifests.KubeletServingCert), TLSKeyFile: path.Join(PKIDir, manifests.KubeletServingKey),
		}),
		KubeProxyConfigPath: manifests.KubeProxyConfig(manifests.KubeProxy{
			Kubeconfig: KubeProxyKubeconfig, ClusterCIDR: s.Cluster.PodCIDR, Hostname: s.Self.Name, InContainer: f.InContainer,
		}),
	}
	us := []unitFile{
		{name: "kube-proxy.service", data: manifests.KubeProxyUnit(n), configs: []string{KubeProxyConfigPath, KubeProxyKubeconfig}},
		{name: "knode.service", data: manifests.KnodeUnit(n), noRestart: true},
		// Its stop is what matters (the control plane stopped in order at
		// shutdown); restarting it would stop the control plane now.
		{name: "knode-shutdown.service", data: manifests.ShutdownUnit(n), noRestart: true},
		// The kubelet last, after the units systemd starts with it: its first
		// pod cgroups are then made while systemd is otherwise idle (on
		// cgroup v1 with the systemd driver a pod whose cgroup is not ready
		// waits out the kubelet's 10 s sync back-off).
		{name: "kubelet.service", data: manifests.KubeletUnit(n), configs: []string{KubeletConfigPath, KubeletKubeconfig, path.Join(PKIDir, manifests.CACert),
			path.Join(PKIDir, manifests.KubeletServingCert)}},
	}
	return us, configs
}

func unitsPhase() Phase {
	return Phase{
		Name: PhaseUnits,
		Description: "install the kubelet and kube-proxy configurations and the systemd units of the kubelet, kube-proxy, knode and " +
			"knode-shutdown (at system shutdown, the control plane stopped in order while etcd runs); " +
			"enable and (re)start them, once every file the kubelet reads (images, static-pod manifests) is in place",
		Plan:      planUnits,
		PlanReset: planUnitsReset,
	}
}

// changedFiles records, at plan time, which files an earlier phase of the
// same run is about to rewrite; services reading them must restart.
func changedFiles(e *Env) []string {
	return e.pendingWrites
}

func planUnits(ctx context.Context, e *Env) ([]Change, error) {
	f, err := e.Facts(ctx)
	if err != nil {
		return nil, err
	}
	us, configs := nodeUnits(e, f)
	var cs []Change
	var dirty []string
	for _, name := range []string{KubeletConfigPath, KubeProxyConfigPath} {
		c, err := planFile(e, name, configs[name], 0o644)
		if err != nil {
			return nil, err
		}
		if len(c) > 0 {
			dirty = append(dirty, name)
		}
		cs = append(cs, c...)
	}
	// The kubelet watches its static-pod directory only if it exists when
	// the kubelet starts (otherwise it finds manifests on its 20 s re-scan).
	if !e.Host.Files.Exists(ManifestsDir) {
		cs = append(cs, change("create directory "+ManifestsDir, func(context.Context) error {
			return e.Host.Files.MkdirAll(ManifestsDir, 0o700)
		}))
	}
	c, err := planServices(ctx, e, us, dirty)
	if err != nil {
		return nil, err
	}
	return append(cs, c...), nil
}

// planServices installs unit files, reloads systemd when one changed, and
// enables and (re)starts each unit: started when inactive, restarted when
// its unit file or one of its configs (dirty, or written earlier in this
// run) changed.
func planServices(ctx context.Context, e *Env, us []unitFile, dirty []string) ([]Change, error) {
	var cs []Change
	reload := false
	for _, u := range us {
		c, err := planFile(e, path.Join(SystemdUnitDir, u.name), u.data, 0o644)
		if err != nil {
			return nil, err
		}
		if len(c) > 0 {
			reload = true
			dirty = append(dirty, u.name)
		}
		cs = append(cs, c...)
	}
	sd := e.Host.Systemd
	if reload {
		cs = append(cs, change("systemctl daemon-reload", func(ctx context.Context) error {
			if err := sd.DaemonReload(ctx); err != nil {
				return fmt.Errorf("daemon-reload: %w", err)
			}
			return nil
		}))
	}
	dirty = append(dirty, changedFiles(e)...)
	for _, u := range us {
		active, enabled, err := sd.State(ctx, u.name)
		if err != nil {
			return nil, fmt.Errorf("state of %s: %w", u.name, err)
		}
		if !enabled {
			cs = append(cs, change("systemctl enable "+u.name, func(ctx context.Context) error {
				if err := sd.Enable(ctx, u.name); err != nil {
					return fmt.Errorf("enable %s: %w", u.name, err)
				}
				return nil
			}))
		}
		stale := slices.Contains(dirty, u.name) || slices.ContainsFunc(u.configs, func(c string) bool { return slices.Contains(dirty, c) })
		if active == "active" && (u.noRestart || !stale) {
			continue
		}
		what := "systemctl restart " + u.name
		if active != "active" {
			what = "systemctl start " + u.name
		}
		cs = append(cs, change(what, func(ctx context.Context) error {
			if err := sd.Restart(ctx, u.name); err != nil {
				return fmt.Errorf("start %s: %w", u.name, err)
			}
			return nil
		}))
	}
	return cs, nil
}

func planUnitsReset(ctx context.Context, e *Env) ([]Change, error) {
	cs := planServicesReset(ctx, e, unitNames())
	return append(cs, planRemove(e, KubeletConfigPath, KubeProxyConfigPath, ManifestsDir, "/var/lib/kubelet", "/var/lib/kube-proxy")...), nil
}

// planServicesReset stops, disables and removes the units knode installed
// among names; before containerd stops, every Kubernetes container is
// removed. A service the host ran before knode took it over is enabled and
// started again, from its own unit.
func planServicesReset(ctx context.Context, e *Env, names []string) []Change {
	sd := e.Host.Systemd
	var cs []Change
	installed := false
	l, err := readLedger(e)
	if err != nil {
		e.Log.Warn("ledger unreadable: no service of the host's restarted", "err", err)
	}
	var prior []Change
	for _, u := range names {
		p := path.Join(SystemdUnitDir, u)
		if !ownUnit(e, u) {
			continue
		}
		if enabled, active := priorUnit(l, u); enabled || active {
			prior = append(prior, change("bring back the host's "+u, func(ctx context.Context) error {
				if enabled {
					if err := sd.Enable(ctx, u); err != nil {
						return fmt.Errorf("enable %s: %w", u, err)
					}
				}
				if active {
					if err := sd.Restart(ctx, u); err != nil {
						return fmt.Errorf("start %s: %w", u, err)
					}
				}
				return nil
			}))
		}
		installed = true
		if u == "containerd.service" {
			cs = append(cs, removeContainers(e))
			cs = append(cs, stopPodSlice(ctx, e)...)
		}
		cs = append(cs, change("stop and disable "+u, func(ctx context.Context) error {
			if err := sd.Stop(ctx, u); err != nil {
				return fmt.Errorf("stop %s: %w", u, err)
			}
			if err := sd.Disable(ctx, u); err != nil {
				return fmt.Errorf("disable %s: %w", u, err)
			}
			return nil
		}))
		cs = append(cs, planRemove(e, p)...)
	}
	if installed {
		cs = append(cs, change("systemctl daemon-reload", func(ctx context.Context) error { return sd.DaemonReload(ctx) }))
	}
	return append(cs, prior...)
}

// podSlice is the parent of the pod cgroups the kubelet makes with the
// systemd cgroup driver: transient units that outlive the kubelet.
const podSlice = "kubepods.slice"

// stopPodSlice stops the kubelet's pod slices (kubepods.slice and the QoS
// slices under it) once the containers are gone: on a real host (the VM lab)
// a reset left them loaded until the next boot.
func stopPodSlice(ctx context.Context, e *Env) []Change {
	active, _, err := e.Host.Systemd.State(ctx, podSlice)
	if err != nil || active != "active" {
		return nil
	}
	return []Change{change("stop "+podSlice+" (the kubelet's pod cgroups)", func(ctx context.Context) error {
		if err := e.Host.Systemd.Stop(ctx, podSlice); err != nil {
			return fmt.Errorf("stop %s: %w", podSlice, err)
		}
		return nil
	})}
}

// removeContainers stops and removes every pod and container of the CRI,
// which outlive containerd.service (KillMode=process keeps the shims); the
// kubelet is stopped by then, so none comes back.
func removeContainers(e *Env) Change {
	return change("stop and remove every pod and container (CRI)", func(ctx context.Context) error {
		n, err := e.Host.Pods.RemoveAll(ctx)
		if errors.Is(err, ErrNoRuntime) {
			e.Log.Info("containerd not reachable; no containers to remove", "err", err)
			return nil
		}
		if err != nil {
			return err
		}
		e.Log.Info("removed the pods and containers", "count", n)
		return nil
	})
}

// resolvedConf is systemd-resolved's list of the real upstream servers.
const resolvedConf = "/run/systemd/resolve/resolv.conf"

// resolvConf is the file pods with dnsPolicy Default (CoreDNS) inherit: on
// hosts running systemd-resolved, /etc/resolv.conf names the 127.0.0.53 stub,
// which inside a pod is the pod's own loopback (CoreDNS would detect a loop and
// stop), so the upstream list is used instead, as kubeadm does.
func resolvConf(f Files) string {
	if f.Exists(resolvedConf) {
		return resolvedConf
	}
	return "/etc/resolv.conf"
}
