package hostprep

import (
	"context"
	"path"

	"knode.dev/knode/manifests"
)

func cniPhase() Phase {
	return Phase{
		Name:        PhaseCNI,
		Description: "write the CNI configuration: bridge + host-local + portmap on " + BridgeName,
		Plan: func(ctx context.Context, e *Env) ([]Change, error) {
			n, err := inspectNet(e)
			if err != nil {
				return nil, err
			}
			return planFile(e, CNIConfPath, manifests.CNIConfig(manifests.CNI{
				NetworkName: "knode", Bridge: BridgeName, Subnet: e.Spec.Self.PodCIDR, MTU: n.podMTU(),
				DataDir: path.Join(e.Spec.DataDir, "cni"),
			}), 0o644)
		},
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			return planRemove(e, CNIConfPath, legacyCNIConfPath), nil
		},
	}
}
