package assets

import (
	"context"
	"testing"
)

// BenchmarkStageEmbedded stages a release bin/knode's payload (KNODE_PAYLOAD_CHECK names
// it) into a fresh directory per iteration (first-run staging: decompress, verify, write,
// fsync, assemble images). It is skipped without one.
func BenchmarkStageEmbedded(b *testing.B) {
	payload := releasePayload(b)
	for b.Loop() {
		if _, err := StageFS(context.Background(), payload, b.TempDir(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageEmbeddedAgain measures the common case: the payload is already staged.
func BenchmarkStageEmbeddedAgain(b *testing.B) {
	payload := releasePayload(b)
	dir := b.TempDir()
	if _, err := StageFS(context.Background(), payload, dir, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := StageFS(context.Background(), payload, dir, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageSynthetic is the same first-run staging on the small synthetic payload.
func BenchmarkStageSynthetic(b *testing.B) {
	payload, _ := synthetic(b)
	for b.Loop() {
		if _, err := StageFS(context.Background(), payload, b.TempDir(), nil); err != nil {
			b.Fatal(err)
		}
	}
}
