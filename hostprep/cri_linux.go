//go:build linux

package hostprep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criPods talks to the container runtime's CRI service on its unix socket,
// the API the kubelet itself uses.
type criPods struct{ socket string }

// stopGrace is how long a container has to exit after SIGTERM.
const stopGrace = 10 // seconds

// dial connects to the CRI service; the connection is made on first use.
func (c criPods) dial() (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("CRI at %s: %w", c.socket, err)
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// RestartContainers implements Pods.
func (c criPods) RestartContainers(ctx context.Context, namespace, name string) (int, error) {
	rt, done, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer done()
	ctrs, err := running(ctx, rt, map[string]string{"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": name})
	if err != nil {
		return 0, fmt.Errorf("list the containers of pod %s/%s: %w", namespace, name, err)
	}
	for _, ctr := range ctrs {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.Id, Timeout: stopGrace}); err != nil {
			return 0, fmt.Errorf("stop container %s of pod %s/%s: %w", ctr.Metadata.GetName(), namespace, name, err)
		}
	}
	return len(ctrs), nil
}

// running lists the running containers whose labels include selector (the
// labels the kubelet puts on every container it creates).
func running(ctx context.Context, rt runtimeapi.RuntimeServiceClient, selector map[string]string) ([]*runtimeapi.Container, error) {
	list, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: selector,
	}})
	if err != nil {
		return nil, err
	}
	return list.Containers, nil
}

// shutdownWaves are the control plane's containers in the order a node's
// shutdown stops them: the scheduler and the controller-manager first, so
// that they hand their leader leases over through a running apiserver (the
// other masters' take over at once instead of after the lease expires);
// then the apiserver, which removes itself from the kubernetes Service's
// endpoints and deletes its lease while etcd still answers. etcd is left to
// systemd, stopped after them.
var shutdownWaves = [][]string{{"kube-scheduler", "kube-controller-manager"}, {"kube-apiserver"}}

// StopControlPlane implements Pods in shutdownWaves' order, each container
// given stopGrace to exit.
func (c criPods) StopControlPlane(ctx context.Context) (int, error) { return c.stopControlPlane(ctx) }

func (c criPods) stopControlPlane(ctx context.Context) (int, error) {
	rt, done, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer done()
	stopped := 0
	for _, wave := range shutdownWaves {
		var ids []string
		for _, name := range wave {
			ctrs, err := running(ctx, rt, map[string]string{"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.container.name": name})
			if err != nil {
				return stopped, fmt.Errorf("list the %s containers: %w", name, err)
			}
			for _, ctr := range ctrs {
				ids = append(ids, ctr.Id)
			}
		}
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				_, errs[i] = rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: stopGrace})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return stopped, fmt.Errorf("stop the control plane (%s): %w", strings.Join(wave, ", "), err)
		}
		stopped += len(ids)
	}
	return stopped, nil
}

// RemoveAll implements Pods: sandboxes first (stopping one stops its
// containers and tears down its network through CNI), then any container
// left without one.
func (c criPods) RemoveAll(ctx context.Context) (int, error) {
	if _, err := os.Stat(c.socket); errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: no socket %s", ErrNoRuntime, c.socket)
	}
	rt, done, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer done()
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			return 0, fmt.Errorf("%w: %s: %w", ErrNoRuntime, c.socket, err)
		}
		return 0, fmt.Errorf("list pod sandboxes: %w", err)
	}
	n := 0
	var errs []error
	for _, p := range pods.Items {
		what := fmt.Sprintf("pod %s/%s (sandbox %s)", p.Metadata.GetNamespace(), p.Metadata.GetName(), p.Id)
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", what, err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", what, err))
			continue
		}
		n++
	}
	ctrs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return n, errors.Join(append(errs, fmt.Errorf("list containers: %w", err))...)
	}
	for _, ctr := range ctrs.Containers {
		what := fmt.Sprintf("container %s (%s)", ctr.Metadata.GetName(), ctr.Id)
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", what, err))
			continue
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", what, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// PullImage has containerd pull ref through the CRI, as the kubelet does:
// through the node's image mirror first (hosts.toml), so an image knode
// just imported into containerd's content store is resolved by the
// mirror, found complete, and unpacked, with nothing fetched.
func PullImage(ctx context.Context, ref string) error {
	conn, err := grpc.NewClient("unix://"+ContainerdSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("CRI at %s: %w", ContainerdSocket, err)
	}
	defer conn.Close()
	_, err = runtimeapi.NewImageServiceClient(conn).PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return fmt.Errorf("unpack image %s (CRI pull): %w", ref, err)
	}
	return nil
}

// RemoveIn implements Pods: each ready sandbox's address comes from its
// status (the CNI result the runtime keeps); host-network pods have none in
// the pod range and stay.
func (c criPods) RemoveIn(ctx context.Context, subnet netip.Prefix) ([]string, error) {
	rt, done, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer done()
	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", err)
	}
	var removed []string
	var errs []error
	for _, p := range pods.Items {
		name := p.Metadata.GetNamespace() + "/" + p.Metadata.GetName()
		st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.Id})
		if err != nil {
			errs = append(errs, fmt.Errorf("status of pod %s (sandbox %s): %w", name, p.Id, err))
			continue
		}
		if !sandboxIn(st.GetStatus().GetNetwork(), subnet) {
			continue
		}
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s (sandbox %s): %w", name, p.Id, err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s (sandbox %s): %w", name, p.Id, err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// sandboxIn reports whether one of a sandbox's addresses is in subnet.
func sandboxIn(n *runtimeapi.PodSandboxNetworkStatus, subnet netip.Prefix) bool {
	ips := []string{n.GetIp()}
	for _, ip := range n.GetAdditionalIps() {
		ips = append(ips, ip.GetIp())
	}
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil && subnet.Contains(ip) {
			return true
		}
	}
	return false
}
