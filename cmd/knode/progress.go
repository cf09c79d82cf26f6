package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
)

// progress prints numbered steps with their duration to the user (stderr),
// keeping stdout for results that scripts read, and records every step and
// wait as a timing row for the table init and join end with.
//
// A step stays open until the next Step, Finish or Fail: notes and the
// lines of sub-steps (Writer) printed meanwhile do not close it, so its
// duration is that of the work it names.
type progress struct {
	w     io.Writer
	start time.Time
	now   func() time.Time

	step    time.Time
	name    string
	open    bool
	broken  bool // the open step's header line was ended by a note
	timings []timing
	// table: Finish prints the timing table (init and join).
	table bool
}

// timing is one row of the table: a step or a wait, how long it took and
// when it ended, counted from the start of the command.
type timing struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	At      float64 `json:"at"`
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, now: time.Now}
	p.start = p.now()
	p.step = p.start
	return p
}

// launchKey keys the assets.Launch in the app's Metadata (runLaunched).
const launchKey = "launch"

// launchOf returns what the launcher passed to this process (zero when none started it).
func launchOf(c *cli.Context) assets.Launch {
	l, _ := c.App.Metadata[launchKey].(assets.Launch)
	return l
}

// bringUpProgress is the progress of init and join, which end with the timing table. It
// counts from when the launcher began; when the launcher staged the payload into dataDir
// before this command ran, that staging is the table's first row, as it was when the
// command staged it itself.
func bringUpProgress(c *cli.Context, dataDir string) *progress {
	p := newProgress(c.App.ErrWriter)
	p.table = true
	l := launchOf(c)
	if !l.Start.IsZero() && l.Start.Before(p.start) && p.start.Sub(l.Start) < time.Hour {
		p.start = l.Start
	}
	if launcherStaged(l, dataDir) {
		fmt.Fprintf(p.w, "==> staging the payload under %s ... ok (%s, by the launcher before this command: %d files written)\n",
			dataDir, round(l.Took), l.Written)
		p.Row("staging", l.Took, l.Start.Add(l.Took))
	}
	return p
}

// launcherWait is how long a launcher that wrote nothing may have taken before its time
// counts as staging: longer, it waited for another knode staging the same payload (a
// command started at the same moment), and this command waited for that staging.
const launcherWait = 50 * time.Millisecond

// launcherStaged reports whether this command's staging happened in the launcher: it
// staged dataDir, or waited for it to be staged.
func launcherStaged(l assets.Launch, dataDir string) bool {
	return l.StagedInto(dataDir) && (l.Written > 0 || l.Took >= launcherWait)
}

// Step announces the next step and closes the previous one.
func (p *progress) Step(format string, args ...any) { p.StepAs("", format, args...) }

// StepAs is Step with a short name for the timing table (the announced
// text when empty).
func (p *progress) StepAs(row, format string, args ...any) {
	p.done()
	p.step = p.now()
	text := fmt.Sprintf(format, args...)
	if row == "" {
		row = text
	}
	p.name, p.open, p.broken = row, true, false
	fmt.Fprintf(p.w, "==> %s ... ", text)
}

// Header closes the open step and announces a group of sub-steps that are
// timed one by one (host phases, waits); it is not a row itself.
func (p *progress) Header(format string, args ...any) {
	p.done()
	fmt.Fprintf(p.w, "==> "+format+"\n", args...)
}

func (p *progress) done() {
	if !p.open {
		return
	}
	end := p.now()
	d := end.Sub(p.step)
	if p.broken {
		fmt.Fprintf(p.w, "    ok (%s)\n", round(d))
	} else {
		fmt.Fprintf(p.w, "ok (%s)\n", round(d))
	}
	p.record(p.name, d, end)
	p.open, p.broken = false, false
}

// breakLine ends the open step's header line before other output.
func (p *progress) breakLine() {
	if p.open && !p.broken {
		fmt.Fprintln(p.w)
		p.broken = true
	}
}

// Fail closes the open step as failed.
func (p *progress) Fail() {
	if p.open {
		if p.broken {
			fmt.Fprint(p.w, "    ")
		}
		fmt.Fprintf(p.w, "failed (%s)\n", round(p.now().Sub(p.step)))
		p.open, p.broken = false, false
	}
}

// Note prints a line under the open step (or between steps) without closing it.
func (p *progress) Note(format string, args ...any) {
	p.breakLine()
	fmt.Fprintf(p.w, "    "+format+"\n", args...)
}

// Writer returns a writer for a sub-step's own lines (hostprep's, staging's),
// indented under the open step.
func (p *progress) Writer() io.Writer {
	return &prefixWriter{w: writerFunc(func(b []byte) (int, error) {
		p.breakLine()
		return p.w.Write(b)
	}), prefix: "    "}
}

// Row records a step or wait measured elsewhere that ended at end.
func (p *progress) Row(name string, d time.Duration, end time.Time) { p.record(name, d, end) }

func (p *progress) record(name string, d time.Duration, end time.Time) {
	p.timings = append(p.timings, timing{Name: name, Seconds: seconds(d), At: seconds(end.Sub(p.start))})
}

// Finish closes the last step, prints the timing table and the total time.
func (p *progress) Finish(what string) {
	p.done()
	if p.table {
		p.Table()
	}
	fmt.Fprintf(p.w, "==> %s in %s\n", what, round(p.now().Sub(p.start)))
}

// Table prints the timing rows: what, seconds it took, seconds since the start.
func (p *progress) Table() {
	if len(p.timings) == 0 {
		return
	}
	width := len("step or wait")
	for _, t := range p.timings {
		width = max(width, len(t.Name))
	}
	fmt.Fprintf(p.w, "    %-*s  %7s  %7s\n", width, "step or wait", "took s", "at s")
	for _, t := range p.timings {
		fmt.Fprintf(p.w, "    %-*s  %7.2f  %7.2f\n", width, t.Name, t.Seconds, t.At)
	}
}

// Timings returns the rows recorded so far, for --json.
func (p *progress) Timings() []timing { return p.timings }

// Elapsed is the time since the command started.
func (p *progress) Elapsed() time.Duration { return p.now().Sub(p.start) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
