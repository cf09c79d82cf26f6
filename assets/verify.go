package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"knode.dev/knode/release/manifest"
)

// maxWindow bounds the memory a payload stream may ask for while decoding. The release build
// compresses with a long window so the large multi-call binary finds its repeats.
const maxWindow = 1 << 28

// decompress writes the file f, decoded from blob, to w and checks its size and sha256. Any
// mismatch, including a stream that ends early or fails its checksum, is ErrCorrupt.
func decompress(w io.Writer, blob io.Reader, f manifest.File) error {
	dec, err := zstd.NewReader(blob, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return fmt.Errorf("blob %s: %w", f.Blob, err)
	}
	defer dec.Close()
	h := sha256.New()
	// Read one byte more than expected so that an over-long stream is caught too.
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(dec, f.Size+1))
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return err // a write error on the host, not a bad payload
		}
		return fmt.Errorf("%w: blob %s: %w", ErrCorrupt, f.Blob, err)
	}
	if n != f.Size {
		return fmt.Errorf("%w: blob %s decodes to %d bytes, manifest says %d (truncated payload?)", ErrCorrupt, f.Blob, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: blob %s decodes to sha256 %s, manifest says %s", ErrCorrupt, f.Blob, got, f.SHA256)
	}
	return nil
}

// intact reports whether path is a regular file with the given size and sha256.
func intact(path string, size int64, sum string) bool {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() || info.Size() != size {
		return false
	}
	got, err := fileSHA256(path)
	return err == nil && got == sum
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
