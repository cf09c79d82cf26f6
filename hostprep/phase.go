package hostprep

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Change is one planned modification of the host. Plans are lists of
// changes; an empty plan means the phase is already in place.
type Change struct {
	// Phase is the name of the phase that planned the change.
	Phase string
	// What describes the change for people, e.g.
	// "add route 10.10.2.0/24 via 172.31.0.3".
	What  string
	apply func(ctx context.Context) error
}

// String returns "<phase>: <what>".
func (c Change) String() string { return c.Phase + ": " + c.What }

// change builds a Change; the phase name is filled in by the caller.
func change(what string, apply func(ctx context.Context) error) Change {
	return Change{What: what, apply: apply}
}

// Env is what a phase plans against: the spec, the host and the facts the
// host reported, shared by all phases of one run.
type Env struct {
	Spec *Spec
	Host *Host
	// Out receives user-facing progress (warnings, what was done).
	Out io.Writer
	Log *slog.Logger
	// IgnorePreflight holds preflight check names whose errors are reported
	// as warnings; "all" ignores every one.
	IgnorePreflight map[string]bool
	// APIServerWait bounds the wait for the local apiserver (Runner.APIServerWait).
	APIServerWait time.Duration

	// pendingWrites lists files that plans of this run will write, so
	// that later phases can restart what reads them.
	pendingWrites []string

	factsOnce sync.Once
	facts     Facts
	factsErr  error
}

// Facts returns the host's facts, probed once per Env.
func (e *Env) Facts(ctx context.Context) (Facts, error) {
	e.factsOnce.Do(func() { e.facts, e.factsErr = e.Host.Probe.Facts(ctx) })
	return e.facts, e.factsErr
}

// Phase is one named, idempotent and reversible step of host preparation.
type Phase struct {
	Name        string
	Description string
	// If reports whether the phase applies to the spec (nil: always).
	If func(s *Spec) bool
	// Plan returns the changes that bring the host to the spec. It only
	// reads the host.
	Plan func(ctx context.Context, e *Env) ([]Change, error)
	// PlanReset returns the changes that remove what the phase creates. It
	// must work on a host in any state, using only e.Spec's paths, and must
	// not need the rest of the spec.
	PlanReset func(ctx context.Context, e *Env) ([]Change, error)
}

// Phase names, in the order Phases returns them.
const (
	PhasePreflight   = "preflight"
	PhaseKernel      = "kernel"
	PhaseBridge      = "bridge"
	PhasePodNetwork  = "pod-network"
	PhaseCNI         = "cni"
	PhaseIPTables    = "iptables"
	PhasePKI         = "pki"
	PhaseContainerd  = "containerd"
	PhaseImages      = "images"
	PhaseStaticPods  = "static-pods"
	PhaseUnits       = "units"
	PhaseControllers = "controllers"
)

// Phases returns every phase in the order they run.
func Phases() []Phase {
	return []Phase{
		preflightPhase(),
		kernelPhase(),
		bridgePhase(),
		podNetworkPhase(),
		cniPhase(),
		iptablesPhase(),
		pkiPhase(),
		containerdPhase(),
		imagesPhase(),
		staticPodsPhase(),
		unitsPhase(), // the kubelet starts with everything it reads in place
		controllersPhase(),
	}
}

// NetworkPhases returns the phases that configure pod networking only:
// kernel, bridge, pod-network and iptables. They need no payload, files
// aside from knode's own sysctl and module lists, or systemd.
func NetworkPhases() []Phase {
	return []Phase{kernelPhase(), bridgePhase(), podNetworkPhase(), iptablesPhase()}
}

// planPhase runs p.Plan (or p.PlanReset) and stamps the phase name on each change.
func planPhase(ctx context.Context, p Phase, e *Env, reset bool) ([]Change, error) {
	f := p.Plan
	if reset {
		f = p.PlanReset
	}
	if f == nil {
		return nil, nil
	}
	cs, err := f(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("phase %s: %w", p.Name, err)
	}
	for i := range cs {
		cs[i].Phase = p.Name
	}
	return cs, nil
}
