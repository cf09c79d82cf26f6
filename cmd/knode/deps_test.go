package main

import (
	"strings"
	"testing"

	"knode.dev/knode/internal/depstest"
)

// TestNoTestPackagesInBinary checks that nothing made for tests ships in knode:
// no fake (hostprep/hostpreptest and its kind), no testing package. Fakes live
// in *test packages precisely so that this holds. Nor do the upstream
// Kubernetes API types and clients.
func TestNoTestPackagesInBinary(t *testing.T) {
	for _, p := range depstest.List(t, 50) {
		path := p.Path
		if p.Standard && (strings.HasPrefix(path, "internal/") || strings.Contains(path, "/internal/")) {
			continue // the runtime's own internal/testlog and internal/synctest
		}
		// The upstream API types and client-go cost megabytes (README): the
		// binary keeps its small typed subsets (kubeapi, manifests), which
		// tests check against the upstream types.
		for _, heavy := range []string{"k8s.io/api/", "k8s.io/client-go/", "k8s.io/apimachinery/"} {
			if strings.HasPrefix(path, heavy) {
				t.Errorf("knode's binary imports %s", path)
			}
		}
		base := path[strings.LastIndex(path, "/")+1:]
		if strings.HasSuffix(base, "test") || path == "testing" || strings.HasPrefix(path, "testing/") {
			t.Errorf("knode's binary imports the test package %s", path)
		}
	}
}
