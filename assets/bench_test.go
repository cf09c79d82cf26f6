package assets

import (
	"context"
	"errors"
	"testing"
)

// BenchmarkStageEmbedded stages the real embedded payload into a fresh directory per
// iteration (first-run staging: decompress, verify, write, fsync, assemble images). It is
// skipped without a payload.
func BenchmarkStageEmbedded(b *testing.B) {
	if _, err := ReadManifest(); errors.Is(err, ErrNoPayload) {
		b.Skip("no payload embedded")
	}
	for b.Loop() {
		if _, err := Stage(context.Background(), b.TempDir(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStageEmbeddedAgain measures the common case: the payload is already staged.
func BenchmarkStageEmbeddedAgain(b *testing.B) {
	if _, err := ReadManifest(); errors.Is(err, ErrNoPayload) {
		b.Skip("no payload embedded")
	}
	dir := b.TempDir()
	if _, err := Stage(context.Background(), dir, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Stage(context.Background(), dir, nil); err != nil {
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
