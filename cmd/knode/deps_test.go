package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoTestPackagesInBinary checks that nothing made for tests ships in knode:
// no fake (hostprep/hostpreptest and its kind), no testing package. Fakes live
// in *test packages precisely so that this holds.
func TestNoTestPackagesInBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		n++
		if std == "true" && (strings.HasPrefix(path, "internal/") || strings.Contains(path, "/internal/")) {
			continue // the runtime's own internal/testlog and internal/synctest
		}
		base := path[strings.LastIndex(path, "/")+1:]
		if strings.HasSuffix(base, "test") || path == "testing" || strings.HasPrefix(path, "testing/") {
			t.Errorf("knode's binary imports the test package %s", path)
		}
	}
	if n < 50 {
		t.Fatalf("go list -deps listed only %d packages:\n%s", n, out)
	}
}
