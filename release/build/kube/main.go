// Command kube is knode's multi-call build of the Kubernetes and etcd components: one binary
// that shares their common code (about 139 MB instead of 429 MB for separate binaries, and it
// compresses to a third of their size).
//
// It runs the component named by the base name of argv[0] (so a symlink or hard link named
// kubelet runs the kubelet), or else by its first argument:
//
//	kubelet --version            # through a link named kubelet
//	kube kubelet --version       # through the binary itself
//
// The component then sees itself as argv[0] and the remaining arguments, exactly as its own
// binary would.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/spf13/cobra"
)

// component runs one program and returns its exit code.
type component func() int

func components() map[string]component {
	return map[string]component{
		"kube-apiserver":          runAPIServer,
		"kube-controller-manager": runControllerManager,
		"kube-scheduler":          runScheduler,
		"kubelet":                 runKubelet,
		"kube-proxy":              runProxy,
		"kubectl":                 runKubectl,
		"etcd":                    runEtcd,
		"etcdctl":                 runEtcdctl,
		"etcdutl":                 runEtcdutl,
		"coredns":                 runCoreDNS,
	}
}

func main() {
	all := components()
	if run, ok := all[filepath.Base(os.Args[0])]; ok {
		os.Exit(start(filepath.Base(os.Args[0]), run))
	}
	if len(os.Args) > 1 {
		if run, ok := all[os.Args[1]]; ok {
			os.Args = os.Args[1:]
			os.Exit(start(os.Args[0], run))
		}
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s COMPONENT [ARGS...], or run it through a link named COMPONENT\ncomponents:\n", filepath.Base(os.Args[0]))
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %s\n", name)
	}
	os.Exit(2)
}

// start resets process-wide switches that a linked-in package's init may have changed (etcdctl
// turns on cobra's prefix matching; CoreDNS registers its flags on the standard library's
// flag.CommandLine, which kube-proxy merges into its own), so each component sees the defaults
// its own binary has.
func start(name string, run component) int {
	cobra.EnablePrefixMatching = false
	if name != "coredns" {
		dropGoFlags(coreDNSFlags()...)
	}
	return run()
}

// dropGoFlags replaces flag.CommandLine by a copy without the named flags.
func dropGoFlags(names ...string) {
	fs := flag.NewFlagSet(flag.CommandLine.Name(), flag.CommandLine.ErrorHandling())
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(names, f.Name) {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	flag.CommandLine = fs
}
