//go:build linux

package hostprep

import (
	"context"
	"fmt"

	"knode.dev/knode/internal/cri"
)

// criPods talks to the container runtime's CRI service on its unix socket,
// the API the kubelet itself uses.
type criPods struct{ socket string }

// stopGrace is how long a container has to exit after SIGTERM.
const stopGrace = 10 // seconds

// RestartContainers implements Pods.
func (c criPods) RestartContainers(ctx context.Context, namespace, name string) (int, error) {
	rt := cri.New(c.socket)
	defer rt.Close()
	// The labels the kubelet puts on every container it creates.
	list, err := rt.RunningContainers(ctx, map[string]string{"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": name})
	if err != nil {
		return 0, fmt.Errorf("list the containers of pod %s/%s: %w", namespace, name, err)
	}
	for _, ctr := range list {
		if err := rt.StopContainer(ctx, ctr.ID, stopGrace); err != nil {
			return 0, fmt.Errorf("stop container %s of pod %s/%s: %w", ctr.Name, namespace, name, err)
		}
	}
	return len(list), nil
}
