package hostprep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"knode.dev/knode/internal/poll"
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
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var state string
	err := poll.Until(wctx, 100*time.Millisecond, func() (bool, error) {
		var err error
		state, _, err = h.Systemd.State(ctx, "kubelet.service")
		return state == "inactive" || state == "failed", err
	})
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("kubelet.service is still %s after %s: it would start the control plane again, so nothing was stopped "+
			"(knode-shutdown.service stops the control plane at system shutdown, after the kubelet)", state, wait)
	}
	if err != nil {
		return 0, err
	}
	return h.Pods.StopControlPlane(ctx)
}
