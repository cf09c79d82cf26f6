package registry

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Held, recomputed every few seconds for the announcement, reads each
// manifest from containerd once while containerd holds it, yet still
// follows what containerd holds: a new image is walked, a manifest or a
// layer containerd lost is no longer announced, and what no image reaches
// any more leaves the cache.
func TestHeldReadsEachManifestOnce(t *testing.T) {
	ctx := context.Background()
	a, b := newTestImage(t, "app:v1", "one"), newTestImage(t, "tool:v1", "two")
	s, ctrd := storeWithCtrd(t, a)
	held := func() []string {
		t.Helper()
		blobs, names, err := s.Held(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, n := range names {
			out = append(out, n.Ref)
		}
		if len(blobs) != 3*len(names) { // manifest, config, one layer each
			t.Errorf("%d blobs held for %v", len(blobs), out)
		}
		return out
	}
	reads := func(want int, what string) {
		t.Helper()
		before := ctrd.Reads()
		got := held()
		if n := ctrd.Reads() - before; n != want {
			t.Errorf("%s: %d content reads, want %d (names %v)", what, n, want, got)
		}
	}

	reads(1, "first walk")
	reads(0, "again")
	if _, err := s.Import(ctx, writeTemp(t, "b.tar", tarOf(t, b.ociFiles(), "")), time.Now()); err != nil {
		t.Fatal(err)
	}
	reads(1, "after a second import")
	reads(0, "again")
	if got := held(); !slices.Equal(got, []string{"docker.io/library/app:v1", "docker.io/library/tool:v1"}) {
		t.Fatalf("announced %v", got)
	}

	ctrd.Lose(b.layers[0])
	if got := held(); !slices.Equal(got, []string{"docker.io/library/app:v1"}) {
		t.Errorf("with tool's layer lost: announced %v", got)
	}
	ctrd.Lose(a.manifest)
	if got := held(); len(got) != 0 {
		t.Errorf("with app's manifest lost: announced %v", got)
	}
	s.manifests.mu.Lock()
	n := len(s.manifests.m)
	s.manifests.mu.Unlock()
	if n != 1 { // tool's manifest: still held by containerd, its image incomplete
		t.Errorf("%d manifests cached, want 1", n)
	}
}
