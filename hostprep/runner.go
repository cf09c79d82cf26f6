package hostprep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Runner applies phases to a host. The zero value runs every phase.
//
// It first plans every selected phase, touching nothing; any planning error
// (a failed preflight check, a conflicting route, an unreadable file) stops
// the run before the first change. It then applies the plans in order. When
// a change fails, the phases that changed something in this run, and the
// failing one, are reverted (unless NoRollback), so a run either completes or
// leaves those phases removed rather than half-applied.
type Runner struct {
	// Phases to choose from; nil means Phases().
	Phases []Phase
	// Only, when set, names the phases to run; Skip names phases not to run.
	Only, Skip []string
	// DryRun lists every change instead of making it.
	DryRun bool
	// IgnorePreflightErrors downgrades the named preflight errors to warnings
	// ("all" for every check).
	IgnorePreflightErrors []string
	// NoRollback leaves a failed run as it is.
	NoRollback bool
	// Out receives progress; nil discards it.
	Out io.Writer
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// APIServerWait bounds the controllers phase's wait for the local
	// apiserver (0: DefaultAPIServerWait). A slow host (an emulated VM, a
	// small board) needs more: `knode init --timeout`.
	APIServerWait time.Duration
	// Timed, when set, is told how long planning ("plan") and then each
	// applied phase took, for the timing table of init and join.
	Timed func(phase string, start, end time.Time)
}

// Apply brings h to the state s describes and returns the changes made (or,
// in dry-run mode, the changes that would be made). An empty result means
// the host was already in place.
func (r *Runner) Apply(ctx context.Context, s *Spec, h *Host) ([]Change, error) {
	spec := s.withDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	phases, err := r.selected(&spec)
	if err != nil {
		return nil, err
	}
	e := r.env(&spec, h)
	start := time.Now()
	plans := make([][]Change, len(phases))
	var errs []error
	seen := map[string]bool{}
	for i, p := range phases {
		plans[i], err = planPhase(ctx, p, e, false)
		// Phases sharing a check (the pod range) report it once.
		if err != nil && !seen[errors.Unwrap(err).Error()] {
			seen[errors.Unwrap(err).Error()] = true
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.timed("plan", start)
	var done []Change
	for i, p := range phases {
		start := time.Now()
		applied, err := r.applyPlan(ctx, e, p, plans[i])
		r.timed(p.Name, start)
		done = append(done, applied...)
		if err != nil {
			return done, r.rollback(ctx, e, phases[:i+1], plans[:i+1], err)
		}
	}
	return done, nil
}

func (r *Runner) timed(phase string, start time.Time) {
	if r.Timed != nil && !r.DryRun {
		r.Timed(phase, start, time.Now())
	}
}

// applyPlan makes (or lists) the changes of one phase.
func (r *Runner) applyPlan(ctx context.Context, e *Env, p Phase, plan []Change) ([]Change, error) {
	if len(plan) == 0 {
		fmt.Fprintf(e.Out, "[%s] in place\n", p.Name)
		return nil, nil
	}
	var done []Change
	for _, c := range plan {
		if r.DryRun {
			fmt.Fprintf(e.Out, "[%s] would %s\n", p.Name, c.What)
			done = append(done, c)
			continue
		}
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if err := c.apply(ctx); err != nil {
			if !strings.HasPrefix(err.Error(), c.What) {
				err = fmt.Errorf("%s: %w", c.What, err)
			}
			return done, fmt.Errorf("phase %s: %w", p.Name, err)
		}
		e.Log.Info("applied", "phase", p.Name, "change", c.What)
		fmt.Fprintf(e.Out, "[%s] %s\n", p.Name, c.What)
		done = append(done, c)
	}
	return done, nil
}

// rollback reverts, newest first, the phases that had a non-empty plan.
func (r *Runner) rollback(ctx context.Context, e *Env, phases []Phase, plans [][]Change, cause error) error {
	if r.NoRollback || r.DryRun {
		return cause
	}
	errs := []error{cause}
	for i := len(phases) - 1; i >= 0; i-- {
		if len(plans[i]) == 0 {
			continue
		}
		fmt.Fprintf(e.Out, "[%s] rolling back\n", phases[i].Name)
		if _, err := resetPhase(context.WithoutCancel(ctx), e, phases[i], false); err != nil {
			errs = append(errs, fmt.Errorf("rollback: %w", err))
		}
	}
	if _, err := resetPhase(context.WithoutCancel(ctx), e, leftoversPhase(), false); err != nil {
		errs = append(errs, fmt.Errorf("rollback: %w", err))
	}
	return errors.Join(errs...)
}

// selected returns the phases to run, in order.
func (r *Runner) selected(s *Spec) ([]Phase, error) {
	all := r.Phases
	if all == nil {
		all = Phases()
	}
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	for _, n := range append(slices.Clone(r.Only), r.Skip...) {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("unknown phase %q (phases: %s)", n, strings.Join(names, ", "))
		}
	}
	var out []Phase
	for _, p := range all {
		if len(r.Only) > 0 && !slices.Contains(r.Only, p.Name) || slices.Contains(r.Skip, p.Name) {
			continue
		}
		if p.If != nil && !p.If(s) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *Runner) env(s *Spec, h *Host) *Env {
	e := &Env{Spec: s, Host: h, Out: r.Out, Log: r.Log, IgnorePreflight: map[string]bool{}, APIServerWait: r.APIServerWait}
	if e.APIServerWait <= 0 {
		e.APIServerWait = DefaultAPIServerWait
	}
	if e.Out == nil {
		e.Out = io.Discard
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	for _, n := range r.IgnorePreflightErrors {
		e.IgnorePreflight[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return e
}
