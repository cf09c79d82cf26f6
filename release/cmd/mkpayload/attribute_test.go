package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"knode.dev/knode/release/manifest"
)

// A file repeating an earlier one costs almost nothing in a solid stream; the shares add
// up to the blob's size.
func TestAttribute(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	a := make([]byte, 1<<20)
	for i := range a {
		a[i] = byte(rnd.IntN(256))
	}
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(rnd.IntN(256))
	}
	m := manifest.Manifest{Files: []manifest.File{{Name: "a", Size: int64(len(a))}, {Name: "copy", Size: int64(len(a))}, {Name: "b", Size: int64(len(b))}}}
	blob := manifest.Blob{Name: "x.zst", Files: []string{"a", "copy", "b"}}
	var buf bytes.Buffer
	enc := goEncoder{level: 2, windowLog: 22}
	if err := enc.compress(&buf, bytes.NewReader(append(append(append([]byte(nil), a...), a...), b...))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.zst")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	shares, err := attribute(path, blob, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shares %v of %d bytes", shares, buf.Len())
	if sum := shares["a"] + shares["copy"] + shares["b"]; sum != int64(buf.Len()) {
		t.Errorf("shares %v add up to %d, the blob has %d bytes", shares, sum, buf.Len())
	}
	// Random bytes do not compress: a and b cost about their size; the copy about nothing
	// (up to the one block the decoder reads ahead).
	if shares["copy"] > 200<<10 || shares["a"] < 800<<10 || shares["b"] < 800<<10 {
		t.Errorf("shares %v: want a and b about 1 MiB each, the copy under 200 KiB", shares)
	}
}
