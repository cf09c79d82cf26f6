package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"knode.dev/knode/release/manifest"
	"knode.dev/knode/release/oci"
)

// image assembles an image tarball from the staged files and checks it against the
// release build's record, unless an intact tarball is already in place.
func (st *stager) image(img manifest.Image) error {
	path := st.abs(img.Path)
	if intact(path, img.Size, img.SHA256) {
		st.kept++
		return nil
	}
	start := time.Now()
	err := st.write(path, 0o644, func(w io.Writer) error {
		h := sha256.New()
		counter := &countWriter{}
		if _, err := oci.Write(io.MultiWriter(w, h, counter), img.Image, os.DirFS(st.dir)); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 || counter.n != img.Size {
			return fmt.Errorf("assembled tarball (%d bytes, sha256 %s) differs from the release build's (%d bytes, sha256 %s)",
				counter.n, got, img.Size, img.SHA256)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stage image %s (%s) to %s: %w", img.Name, img.Image.Ref, path, err)
	}
	fmt.Fprintf(st.progress, "staged image %s (%s) in %s\n", img.Image.Ref, mb(img.Size), time.Since(start).Round(time.Millisecond))
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
