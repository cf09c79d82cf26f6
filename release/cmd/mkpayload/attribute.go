package main

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"knode.dev/knode/release/manifest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// attribute decodes a blob and returns how many compressed bytes each of its files took:
// the compressed bytes the decoder had read when the file's last byte came out, less those
// of the files before it. In a solid stream a file's share is what it cost on top of the
// files before it (the code it shares with them is stored once, in the first); the decoder
// reads a block at a time, so a share is exact to about one block (at most 128 KiB).
func attribute(path string, b manifest.Blob, m manifest.Manifest) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := &countingReader{r: f}
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<29))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	shares := map[string]int64{}
	var before int64
	for _, name := range b.Files {
		file, _ := m.File(name)
		if _, err := io.CopyN(io.Discard, dec, file.Size); err != nil {
			return nil, fmt.Errorf("decode %s of blob %s: %w", name, b.Name, err)
		}
		shares[name] = src.n - before
		before = src.n
	}
	if info, err := f.Stat(); err == nil {
		shares[b.Files[len(b.Files)-1]] += info.Size() - before // the stream's tail and checksum
	}
	return shares, nil
}
