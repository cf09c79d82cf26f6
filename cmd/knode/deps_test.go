package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// heavyModules are clients knode talks to programs without, for its size:
// etcd through its JSON gateway (package etcdmember) instead of client/v3, the
// CRI through package internal/cri instead of grpc-go and the generated CRI
// code (3.9 and 4.2 MB of the binary).
var heavyModules = []string{"google.golang.org/grpc", "go.etcd.io/etcd/client/v3", "k8s.io/cri-api", "go.uber.org/zap"}

// TestNoTestPackagesInBinary checks that nothing made for tests ships in knode:
// no fake (hostprep/hostpreptest and its kind), no testing package. Fakes live
// in *test packages precisely so that this holds. Nor does any of heavyModules.
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
		for _, mod := range heavyModules {
			if path == mod || strings.HasPrefix(path, mod+"/") {
				t.Errorf("knode's binary imports %s (see heavyModules)", path)
			}
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
