package hostprep

import (
	"context"
	"fmt"
	"time"
)

// ShutdownControlPlane is knode-shutdown.service's stop at system shutdown:
// once the kubelet has stopped (it would start the containers again), the
// control plane stops in order (Pods.StopControlPlane) while etcd, knode's
// node-local apiserver endpoint and containerd still run, which systemd
// stops only after this returns. The shutdown stops the kubelet beside this
// unit, so it waits up to wait for that; if the kubelet still runs then (the
// unit was stopped by hand), it stops nothing.
//
// Without it systemd stopped every container at once: the apiserver spent
// 30 s on a lease and an endpoint that the etcd exiting beside it could no
// longer write, and the kubernetes Service kept the node's address.
func ShutdownControlPlane(ctx context.Context, h *Host, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		state, _, err := h.Systemd.State(ctx, "kubelet.service")
		if err != nil {
			return 0, err
		}
		if state == "inactive" || state == "failed" {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("kubelet.service is still %s after %s: it would start the control plane again, so nothing was stopped "+
				"(knode-shutdown.service stops the control plane at system shutdown, after the kubelet)", state, wait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return h.Pods.StopControlPlane(ctx)
}
