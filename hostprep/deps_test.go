package hostprep

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps enforces the design's import arrows: hostprep is driven by
// roles through its Spec and never reaches into cluster state itself.
func TestDeps(t *testing.T) {
	forbidden := []string{"knode.dev/knode/gossip", "knode.dev/knode/roles", "knode.dev/knode/cmd", "knode.dev/knode/e2e"}
	for _, dir := range []string{".", "../manifests"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		imports := append(append(pkg.Imports, pkg.TestImports...), pkg.XTestImports...)
		for _, imp := range imports {
			for _, f := range forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("%s imports %s", pkg.ImportPath, imp)
				}
			}
			if dir == "../manifests" && strings.HasPrefix(imp, "knode.dev/") {
				t.Errorf("manifests must import no knode package, imports %s", imp)
			}
		}
	}
}
