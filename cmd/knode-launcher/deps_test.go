package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLauncherStaysSmall keeps the launcher's imports to what staging needs (its size is
// paid by every bin/knode): the standard library, the zstd decoder, and knode's launch,
// assets and payload-format packages. Nothing of knode's program (agent, gossip, the CLI,
// clients) may come in.
func TestLauncherStaysSmall(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := []string{"knode.dev/knode/cmd/knode-launcher", "knode.dev/knode/launch", "knode.dev/knode/assets",
		"knode.dev/knode/release", "knode.dev/knode/release/manifest", "knode.dev/knode/release/oci",
		"knode.dev/knode/release/appended", "knode.dev/knode/internal/atomicfile", "knode.dev/knode/internal/poll"}
	n := 0
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		n++
		if std == "true" || slices.Contains(allowed, path) || strings.HasPrefix(path, "github.com/klauspost/compress") {
			continue
		}
		t.Errorf("the launcher imports %s", path)
	}
	if n < 20 {
		t.Fatalf("go list -deps listed only %d packages:\n%s", n, out)
	}
}
