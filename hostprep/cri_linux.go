//go:build linux

package hostprep

import (
	"context"
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

// RestartContainers implements Pods.
func (c criPods) RestartContainers(ctx context.Context, namespace, name string) (int, error) {
	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("CRI at %s: %w", c.socket, err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
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
