package hostprep

import (
	"context"
	"path"

	"knode.dev/knode/manifests"
)

// Containerd's own paths.
const (
	ContainerdRoot   = "/var/lib/containerd"
	ContainerdState  = "/run/containerd"
	ContainerdSocket = "/run/containerd/containerd.sock"
	// ContainerdCertsDir is containerd's registry configuration directory;
	// knode writes only its _default hosts.toml, which sends every pull to
	// the node's image mirror first.
	ContainerdCertsDir  = "/etc/containerd/certs.d"
	ContainerdMirrorDir = ContainerdCertsDir + "/_default"
	ContainerdMirror    = ContainerdMirrorDir + "/hosts.toml"
	// ImageMirrorURL is the node-local image mirror the agent serves
	// (datadir.ImagesPort).
	ImageMirrorURL = "http://127.0.0.1:6447"
)

// cgroupDriver returns the driver containerd and the kubelet share.
func cgroupDriver(s *Spec, f Facts) string {
	if s.CgroupDriver != "" {
		return s.CgroupDriver
	}
	if f.Systemd {
		return "systemd"
	}
	return "cgroupfs"
}

func containerdPhase() Phase {
	return Phase{
		Name: PhaseContainerd,
		Description: "write containerd's configuration (CRI, the payload's pause image and runc, the kubelet's cgroup driver, " +
			"the node's image mirror first for every registry) " +
			"and its systemd unit; enable and (re)start it",
		Plan: func(ctx context.Context, e *Env) ([]Change, error) {
			f, err := e.Facts(ctx)
			if err != nil {
				return nil, err
			}
			s := e.Spec
			cs, err := planFile(e, ContainerdConfPath, manifests.ContainerdConfig(manifests.Containerd{
				Root: ContainerdRoot, State: ContainerdState, Socket: ContainerdSocket,
				PauseImage: s.Images.Pause, SystemdCgroup: cgroupDriver(s, f) == "systemd",
				RestrictOOMScoreAdj: f.InContainer, RuncPath: path.Join(s.Payload.BinDir, "runc"),
				CNIBinDir: s.Payload.CNIBinDir, CNIConfDir: CNIConfDir, RegistryConfigPath: ContainerdCertsDir,
			}), 0o644)
			if err != nil {
				return nil, err
			}
			// containerd reads hosts.toml at each pull: no restart for it.
			hosts, err := planFile(e, ContainerdMirror, manifests.RegistryMirror(ImageMirrorURL), 0o644)
			if err != nil {
				return nil, err
			}
			cs = append(cs, hosts...)
			var us []unitFile
			if f.InContainer {
				us = append(us, unitFile{name: "knode-rshared.service", data: manifests.RSharedUnit()})
			}
			us = append(us, unitFile{name: "containerd.service", data: manifests.ContainerdUnit(nodeUnit(s)), configs: []string{ContainerdConfPath, CNIConfPath}})
			c, err := planServices(ctx, e, us, nil)
			return append(cs, c...), err
		},
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			cs := planServicesReset(ctx, e, []string{"containerd.service", "knode-rshared.service"})
			cs = append(cs, planRemove(e, ContainerdConfPath, ContainerdRoot, ContainerdMirror)...)
			for _, d := range []string{ContainerdMirrorDir, ContainerdCertsDir} {
				if e.Host.Files.Exists(d) {
					cs = append(cs, change("remove "+d+" if empty", func(context.Context) error {
						e.Host.Files.Remove(d) // fails harmlessly when not empty (the operator's own registries)
						return nil
					}))
				}
			}
			return cs, nil
		},
	}
}
