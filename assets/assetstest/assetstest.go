// Package assetstest builds small payloads for tests of code that stages or launches one:
// real zstd blobs and a valid manifest, as the release build writes them, for files given
// in memory.
package assetstest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/klauspost/compress/zstd"

	"knode.dev/knode/release/appended"
	"knode.dev/knode/release/manifest"
)

// File is one file of a test payload; each is also a program of its own name.
type File struct {
	Name string
	// Path is where it is staged: "bin/knode".
	Path string
	Data []byte
}

// Payload returns a payload directory holding files, in order, in one blob (payload.zst).
func Payload(tb testing.TB, files ...File) fstest.MapFS {
	tb.Helper()
	m := manifest.Manifest{Schema: manifest.Schema}
	blob := manifest.Blob{Name: "payload.zst"}
	var stream []byte
	for _, f := range files {
		sum := sha256.Sum256(f.Data)
		m.Files = append(m.Files, manifest.File{Name: f.Name, Version: "v1.0.0", Path: f.Path, Mode: 0o755,
			Blob: blob.Name, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:])})
		m.Programs = append(m.Programs, manifest.Program{Name: f.Name, Version: "v1.0.0", File: f.Name, Path: f.Path})
		blob.Files = append(blob.Files, f.Name)
		stream = append(stream, f.Data...)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	compressed := enc.EncodeAll(stream, nil)
	enc.Close()
	blob.Size = int64(len(compressed))
	m.Blobs = []manifest.Blob{blob}
	data, err := m.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return fstest.MapFS{manifest.FileName: {Data: data}, blob.Name: {Data: compressed}}
}

// Binary writes program (a path) with payload appended, as the release's bin/knode is
// written, to a new file in a temporary directory, and returns its path.
func Binary(tb testing.TB, program string, payload fstest.MapFS) string {
	tb.Helper()
	prog, err := os.ReadFile(program)
	if err != nil {
		tb.Fatal(err)
	}
	buf := bytes.NewBuffer(prog)
	if err := appended.Write(buf, payload); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "knode")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}
