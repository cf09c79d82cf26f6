package agent

import (
	"context"
	"time"

	"knode.dev/knode/gossip"
)

// HealthProbe checks this node's own components (health.Probe on a real
// host; tests bring their own).
type HealthProbe interface {
	Check(ctx context.Context, node string, master bool) gossip.Health
}

// healthEvery is how often a node checks itself: a stopped kubelet shows in
// every node's `knode status` within this plus gossip's spread.
func (a *Agent) healthEvery() time.Duration {
	if a.opts.Timing == gossip.Fast {
		return 100 * time.Millisecond
	}
	return 2 * time.Second
}

// healthLoop owns this node's health summary: it checks the node and
// publishes a new summary when anything in it changed, until Stop. It runs
// only with a probe (a configured host) and once the node has its place.
func (a *Agent) healthLoop() {
	a.every(a.healthEvery(), func() {
		h := a.hostOpts()
		as, ok := a.Assignment()
		if h == nil || h.Health == nil || !ok || !as.Active() {
			return
		}
		ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
		sum := h.Health.Check(ctx, a.id.Name, as.Seat >= 0)
		cancel()
		held, had := a.state.Snapshot().Health[a.id.Name]
		if had && held.Same(sum) {
			return
		}
		sum.Gen = max(held.Gen+1, uint64(time.Now().UnixNano()))
		if err := a.g.PublishHealth(sum); err != nil {
			a.log.Warn("publish health", "err", err)
			return
		}
		if had && held.Healthy() != sum.Healthy() {
			a.log.Info("health changed", "healthy", sum.Healthy(), "failing", failing(sum))
		}
	})
}

// failing lists a summary's failed checks with their details.
func failing(h gossip.Health) []string {
	var out []string
	for _, c := range h.Checks {
		if !c.OK {
			out = append(out, c.What.String()+": "+c.Detail)
		}
	}
	return out
}
