// Package depstest lists what a program links, for tests that keep a
// binary's imports in bounds.
package depstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Package is one package a program imports, directly or not.
type Package struct {
	Path     string
	Standard bool // part of the standard library
}

// List returns every package the main package in the current directory
// imports (`go list -deps`), failing tb when go fails or lists fewer than
// atLeast packages (a listing that small means go listed something else).
func List(tb testing.TB, atLeast int) []Package {
	tb.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		tb.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var pkgs []Package
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		pkgs = append(pkgs, Package{Path: path, Standard: std == "true"})
	}
	if len(pkgs) < atLeast {
		tb.Fatalf("go list -deps listed only %d packages:\n%s", len(pkgs), out)
	}
	return pkgs
}
