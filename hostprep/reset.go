package hostprep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
)

// ResetOptions configures Reset.
type ResetOptions struct {
	// DataDir is knode's data directory (default /var/lib/knode); Payload
	// paths derive from it as in Spec.
	DataDir string
	// KeepData keeps the data directory (staged payload, saved state).
	KeepData bool
	// DryRun lists what would be removed.
	DryRun bool
	// Phases to reset; nil means Phases().
	Phases []Phase
	Out    io.Writer
	Log    *slog.Logger
}

// Reset removes everything knode created on h, newest phase first, and
// restores the kernel parameters it changed. It works on a host in any state:
// each phase removes only what it finds, and an error in one phase does not
// stop the others. It returns the changes made.
func Reset(ctx context.Context, h *Host, opts ResetOptions) ([]Change, error) {
	spec := Spec{DataDir: opts.DataDir}.withDefaults()
	r := &Runner{Out: opts.Out, Log: opts.Log, DryRun: opts.DryRun}
	e := r.env(&spec, h)
	phases := opts.Phases
	if phases == nil {
		phases = Phases()
	}
	var done []Change
	var errs []error
	for _, p := range slices.Backward(phases) {
		cs, err := resetPhase(ctx, e, p, opts.DryRun)
		done = append(done, cs...)
		errs = append(errs, err)
	}
	left, err := resetPhase(ctx, e, leftoversPhase(), opts.DryRun)
	done = append(done, left...)
	errs = append(errs, err)
	if !opts.KeepData {
		c := change("remove data directory "+spec.DataDir, func(context.Context) error {
			return h.Files.RemoveAll(spec.DataDir)
		})
		c.Phase = "reset"
		if h.Files.Exists(spec.DataDir) {
			cs, err := r.applyPlan(ctx, e, Phase{Name: "reset"}, []Change{c})
			done = append(done, cs...)
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}

// resetPhase plans and applies the removal of one phase, continuing past
// failed changes so that as much as possible is removed.
func resetPhase(ctx context.Context, e *Env, p Phase, dryRun bool) ([]Change, error) {
	plan, err := planPhase(ctx, p, e, true)
	if err != nil {
		return nil, err
	}
	var done []Change
	var errs []error
	for _, c := range plan {
		if dryRun {
			fmt.Fprintf(e.Out, "[%s] would %s\n", p.Name, c.What)
			done = append(done, c)
			continue
		}
		if err := c.apply(ctx); err != nil {
			errs = append(errs, fmt.Errorf("reset %s: %s: %w", p.Name, c.What, err))
			continue
		}
		fmt.Fprintf(e.Out, "[%s] %s\n", p.Name, c.What)
		done = append(done, c)
	}
	return done, errors.Join(errs...)
}
