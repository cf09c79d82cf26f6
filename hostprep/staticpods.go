package hostprep

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"time"

	"knode.dev/knode/internal/poll"
	"knode.dev/knode/manifests"
)

func staticPodsPhase() Phase {
	return Phase{
		Name:        PhaseStaticPods,
		Description: "write the static pod manifests of etcd and kube-apiserver (the controllers phase adds the other two)",
		If:          func(s *Spec) bool { return s.Self.Master },
		Plan:        planStaticPods,
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			var names []string
			for _, n := range staticPodNames() {
				names = append(names, path.Join(ManifestsDir, n))
			}
			return planRemove(e, append(names, EtcdDataDir, EtcdRestoresDir, AuditLogDir)...), nil
		},
	}
}

func staticPodNames() []string {
	return []string{"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"}
}

func planStaticPods(ctx context.Context, e *Env) ([]Change, error) {
	cp := controlPlane(e.Spec)
	cs, err := planEtcd(e, cp)
	if err != nil {
		return nil, err
	}
	c, err := planFile(e, path.Join(ManifestsDir, "kube-apiserver.yaml"), manifests.APIServerPod(cp), 0o600)
	return append(cs, c...), err
}

// controlPlane is what the static pods of this master render from.
func controlPlane(s *Spec) manifests.ControlPlane {
	cp := manifests.ControlPlane{
		NodeName: s.Self.Name, AdvertiseAddress: s.Self.Address, ClusterName: s.Cluster.Name, ClusterDomain: s.Cluster.Domain,
		ServiceCIDR: s.Cluster.ServiceCIDR, PodCIDR: s.Cluster.PodCIDR,
		Image: s.Images.ControlPlane, EtcdImage: s.Images.Etcd, Command: s.Images.ControlPlaneCommand,
		KubernetesDir: KubernetesDir, PKIDir: PKIDir, EtcdDataDir: EtcdDataDir, BinDir: s.Payload.BinDir,
		AuditLogDir: AuditLogDir,
	}
	for _, m := range s.Masters() {
		cp.Members = append(cp.Members, manifests.EtcdMember{Name: m.Name, Address: m.Address})
	}
	return cp
}

func controllersPhase() Phase {
	return Phase{
		Name: PhaseControllers,
		Description: "write the static pod manifests of kube-controller-manager and kube-scheduler once the local apiserver is ready " +
			"(started before it, they exit on its missing RBAC and wait out the kubelet's restart back-off)",
		If:   func(s *Spec) bool { return s.Self.Master },
		Plan: planControllers,
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			return planRemove(e, path.Join(ManifestsDir, staticPodNames()[2]), path.Join(ManifestsDir, staticPodNames()[3])), nil
		},
	}
}

// DefaultAPIServerWait bounds the controllers phase's wait for the local
// apiserver unless the Runner says otherwise: enough for an ordinary machine
// (about 10 s in the container lab), not for an emulated one (TCG: minutes).
const DefaultAPIServerWait = 3 * time.Minute

func planControllers(ctx context.Context, e *Env) ([]Change, error) {
	s := e.Spec
	cp := controlPlane(s)
	var cs []Change
	for i, data := range [][]byte{manifests.ControllerManagerPod(cp), manifests.SchedulerPod(cp)} {
		c, err := planFile(e, path.Join(ManifestsDir, staticPodNames()[2+i]), data, 0o600)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c...)
	}
	if len(cs) == 0 {
		return nil, nil
	}
	url := "https://" + netip.AddrPortFrom(s.Self.Address, APIServerPort).String() + "/readyz"
	wait := change("wait for the local apiserver ("+url+")", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, e.APIServerWait)
		defer cancel()
		if poll.Until(ctx, 200*time.Millisecond, func() (bool, error) { return e.Host.Probe.Serving(ctx, url, s.PKI.CA.CertPEM), nil }) != nil {
			return fmt.Errorf("%s not ready after %s: see `journalctl -u kubelet` and the kube-apiserver pod's log (on a slow machine give init or join a longer --timeout)", url, e.APIServerWait)
		}
		return nil
	})
	return append([]Change{wait}, cs...), nil
}
