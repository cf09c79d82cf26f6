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

// maxWindow bounds the memory a payload stream may ask for while decoding (the decoder keeps
// one window of history). The release build uses all of it (zstd --long=28): the payload is
// one stream of every file, and the window is how far back a file finds the code it shares
// with the files before it; 256 MiB holds the whole 287 MB stream but its last 31 MB, where
// 128 MiB left the kube binary's later parts without knode's and containerd's code (the
// stream was 1.41 MB larger, 58.11 against 56.70 MB).
const maxWindow = 1 << 28

// stream reads the files of one blob off its zstd stream.
type stream struct {
	name string
	dec  *zstd.Decoder
}

func newStream(src io.Reader, name string) (*stream, error) {
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", name, err)
	}
	return &stream{name: name, dec: dec}, nil
}

func (s *stream) close() { s.dec.Close() }

// next copies the stream's next file, f, to w and checks its size and sha256. Any mismatch,
// including a stream that ends early or fails its checksum, is ErrCorrupt.
func (s *stream) next(w io.Writer, f manifest.File) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(s.dec, f.Size))
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return err // a write error on the host, not a bad payload
		}
		return fmt.Errorf("%w: blob %s: %w", ErrCorrupt, s.name, err)
	}
	if n != f.Size {
		return fmt.Errorf("%w: blob %s ends %d bytes into %s, which has %d (truncated payload?)", ErrCorrupt, s.name, n, f.Name, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: blob %s decodes %s to sha256 %s, manifest says %s", ErrCorrupt, s.name, f.Name, got, f.SHA256)
	}
	return nil
}

// end checks that the stream holds nothing after its last file and that its checksum holds.
func (s *stream) end() error {
	n, err := io.Copy(io.Discard, s.dec)
	if err != nil {
		return fmt.Errorf("%w: blob %s: %w", ErrCorrupt, s.name, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: blob %s holds %d bytes more than its files", ErrCorrupt, s.name, n)
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
