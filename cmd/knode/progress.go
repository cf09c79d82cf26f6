package main

import (
	"fmt"
	"io"
	"time"
)

// progress prints numbered steps with their duration to the user (stderr),
// keeping stdout for results that scripts read.
type progress struct {
	w     io.Writer
	start time.Time
	step  time.Time
	open  bool
}

func newProgress(w io.Writer) *progress {
	now := time.Now()
	return &progress{w: w, start: now, step: now}
}

// Step announces the next step and closes the previous one.
func (p *progress) Step(format string, args ...any) {
	p.done()
	p.step = time.Now()
	fmt.Fprintf(p.w, "==> "+format+" ... ", args...)
	p.open = true
}

func (p *progress) done() {
	if p.open {
		fmt.Fprintf(p.w, "ok (%s)\n", time.Since(p.step).Round(time.Millisecond))
		p.open = false
	}
}

// Fail closes the open step as failed.
func (p *progress) Fail() {
	if p.open {
		fmt.Fprintln(p.w, "failed")
		p.open = false
	}
}

// Note prints a line outside the step sequence.
func (p *progress) Note(format string, args ...any) {
	p.done()
	fmt.Fprintf(p.w, "    "+format+"\n", args...)
}

// Finish closes the last step and prints the total time.
func (p *progress) Finish(what string) {
	p.done()
	fmt.Fprintf(p.w, "==> %s in %s\n", what, time.Since(p.start).Round(time.Millisecond))
}
