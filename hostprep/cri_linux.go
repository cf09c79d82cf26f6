//go:build linux

package hostprep

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criPods talks to the container runtime's CRI service on its unix socket,
// the API the kubelet itself uses.
type criPods struct{ socket string }

// stopGrace is how long a container has to exit after SIGTERM.
const stopGrace = 10 // seconds

// client opens the CRI runtime service; close closes its connection.
func (c criPods) client() (rt runtimeapi.RuntimeServiceClient, close func() error, err error) {
	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("CRI at %s: %w", c.socket, err)
	}
	return runtimeapi.NewRuntimeServiceClient(conn), conn.Close, nil
}

// RemoveSandboxes implements Pods.
func (c criPods) RemoveSandboxes(ctx context.Context) (int, error) {
	rt, closeConn, err := c.client()
	if err != nil {
		return 0, err
	}
	defer closeConn()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, fmt.Errorf("list the pod sandboxes at %s: %w", c.socket, err)
	}
	var errs []error
	n := 0
	for _, sb := range list.Items {
		name := sb.GetMetadata().GetNamespace() + "/" + sb.GetMetadata().GetName()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop the sandbox of pod %s: %w", name, err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove the sandbox of pod %s: %w", name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// RestartContainers implements Pods.
func (c criPods) RestartContainers(ctx context.Context, namespace, name string) (int, error) {
	rt, closeConn, err := c.client()
	if err != nil {
		return 0, err
	}
	defer closeConn()
	list, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		// The labels the kubelet puts on every container it creates.
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": name},
	}})
	if err != nil {
		return 0, fmt.Errorf("list the containers of pod %s/%s: %w", namespace, name, err)
	}
	for _, ctr := range list.Containers {
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.Id, Timeout: stopGrace}); err != nil {
			return 0, fmt.Errorf("stop container %s of pod %s/%s: %w", ctr.Metadata.GetName(), namespace, name, err)
		}
	}
	return len(list.Containers), nil
}
