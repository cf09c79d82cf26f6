package hostprep

import (
	"context"
	"path"

	"knode.dev/knode/manifests"
)

func staticPodsPhase() Phase {
	return Phase{
		Name:        PhaseStaticPods,
		Description: "write the static pod manifests of the control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler",
		If:          func(s *Spec) bool { return s.Self.Master },
		Plan:        planStaticPods,
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			var names []string
			for _, n := range staticPodNames() {
				names = append(names, path.Join(ManifestsDir, n))
			}
			return planRemove(e, append(names, EtcdDataDir)...), nil
		},
	}
}

func staticPodNames() []string {
	return []string{"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"}
}

func planStaticPods(ctx context.Context, e *Env) ([]Change, error) {
	s := e.Spec
	cp := manifests.ControlPlane{
		NodeName: s.Self.Name, AdvertiseAddress: s.Self.Address, ClusterName: s.Cluster.Name, ClusterDomain: s.Cluster.Domain,
		ServiceCIDR: s.Cluster.ServiceCIDR, PodCIDR: s.Cluster.PodCIDR,
		Image: s.Images.ControlPlane, EtcdImage: s.Images.Etcd, Command: s.Images.ControlPlaneCommand,
		KubernetesDir: KubernetesDir, PKIDir: PKIDir, EtcdDataDir: EtcdDataDir, BinDir: s.Payload.BinDir,
	}
	for _, m := range s.Masters() {
		cp.Members = append(cp.Members, manifests.EtcdMember{Name: m.Name, Address: m.Address})
	}
	cs, err := planEtcd(e, cp)
	if err != nil {
		return nil, err
	}
	for i, data := range [][]byte{manifests.APIServerPod(cp), manifests.ControllerManagerPod(cp), manifests.SchedulerPod(cp)} {
		c, err := planFile(e, path.Join(ManifestsDir, staticPodNames()[i+1]), data, 0o600)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c...)
	}
	return cs, nil
}
