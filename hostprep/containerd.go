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
		Description: "write containerd's configuration (CRI, the payload's pause image and runc, the kubelet's cgroup driver) " +
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
				CNIBinDir: s.Payload.CNIBinDir, CNIConfDir: CNIConfDir,
			}), 0o644)
			if err != nil {
				return nil, err
			}
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
			return append(cs, planRemove(e, ContainerdConfPath, ContainerdRoot)...), nil
		},
	}
}
