package main

import (
	"slices"
	"strings"
	"testing"

	"knode.dev/knode/internal/depstest"
)

// TestLauncherStaysSmall keeps the launcher's imports to what staging needs (its size is
// paid by every bin/knode): the standard library, the zstd decoder, and knode's launch,
// assets and payload-format packages. Nothing of knode's program (agent, gossip, the CLI,
// clients) may come in.
func TestLauncherStaysSmall(t *testing.T) {
	allowed := []string{"knode.dev/knode/cmd/knode-launcher", "knode.dev/knode/launch", "knode.dev/knode/assets",
		"knode.dev/knode/release", "knode.dev/knode/release/manifest", "knode.dev/knode/release/oci",
		"knode.dev/knode/release/appended", "knode.dev/knode/internal/atomicfile", "knode.dev/knode/internal/poll"}
	for _, p := range depstest.List(t, 20) {
		if p.Standard || slices.Contains(allowed, p.Path) || strings.HasPrefix(p.Path, "github.com/klauspost/compress") {
			continue
		}
		t.Errorf("the launcher imports %s", p.Path)
	}
}
