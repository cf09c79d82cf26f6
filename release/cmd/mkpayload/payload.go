package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"knode.dev/knode/release"
	"knode.dev/knode/release/appended"
	"knode.dev/knode/release/manifest"
	"knode.dev/knode/release/oci"
)

type options struct {
	root, out, compressor, level string
	windowLog                    int
	spec                         release.SpecOptions
	launcher, bin                string
	appendOnly                   bool
}

func run(opts options, stdout io.Writer) error {
	if opts.appendOnly {
		if opts.bin == "" || opts.launcher == "" {
			return errors.New("-append needs -launcher and -bin")
		}
		return writeBin(stdout, opts)
	}
	if opts.windowLog < 20 || opts.windowLog > 28 {
		return fmt.Errorf("window-log %d: want 20..28", opts.windowLog)
	}
	enc, err := newEncoder(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compressing with %s\n", enc)
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", opts.out, err)
	}
	if opts.spec.KnodeVersion == "" {
		return errors.New("-knode-version is empty: give the version knode's program reports")
	}
	if (opts.launcher == "") != (opts.bin == "") {
		return errors.New("-launcher and -bin go together")
	}
	m := release.Spec(opts.spec)
	old := previous(opts.out)
	for i := range m.Files {
		if err := describe(&m.Files[i], opts.root); err != nil {
			return err
		}
	}
	for i := range m.Blobs {
		b := &m.Blobs[i]
		start := time.Now()
		reused, err := compressBlob(b, m, old, opts, enc)
		if err != nil {
			return err
		}
		verb := "compressed"
		if reused {
			verb = "unchanged"
		}
		fmt.Fprintf(stdout, "%s %s: %s in %s\n", verb, b.Name, mb(b.Size), time.Since(start).Round(time.Millisecond))
	}
	for i := range m.Images {
		if err := writeImage(&m.Images[i], opts.root); err != nil {
			return err
		}
	}
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(opts.out, manifest.FileName), data); err != nil {
		return err
	}
	if err := removeStale(opts.out, m); err != nil {
		return err
	}
	if err := report(stdout, m, opts.out); err != nil {
		return err
	}
	if opts.bin == "" {
		return nil
	}
	return writeBin(stdout, opts)
}

// writeBin writes the launcher with the payload appended to opts.bin, through a temporary
// file and a rename, so that a running bin/knode is never rewritten in place.
func writeBin(stdout io.Writer, opts options) error {
	launcher, err := os.Open(opts.launcher)
	if err != nil {
		return fmt.Errorf("launcher: %w", err)
	}
	defer launcher.Close()
	tmp, err := os.CreateTemp(filepath.Dir(opts.bin), "."+filepath.Base(opts.bin)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, launcher)
	if err == nil {
		err = appended.Write(tmp, os.DirFS(opts.out))
	}
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", opts.bin, err)
	}
	info, err := tmp.Stat()
	if err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), opts.bin); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s (launcher %s + payload %s)\n", opts.bin, mb(info.Size()), mb(n), mb(info.Size()-n))
	return nil
}

// previous returns the manifest of the last run, or an empty one.
func previous(out string) manifest.Manifest {
	data, err := os.ReadFile(filepath.Join(out, manifest.FileName))
	if err != nil {
		return manifest.Manifest{}
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return manifest.Manifest{}
	}
	return m
}

// describe fills a file's size and sha256 from the build output.
func describe(f *manifest.File, root string) error {
	path := filepath.Join(root, filepath.FromSlash(f.Path))
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("file %s: %w (build it first: make payload)", f.Name, err)
	}
	defer src.Close()
	h := sha256.New()
	n, err := io.Copy(h, src)
	if err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	f.Size, f.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// compressBlob writes the blob's zstd stream unless the previous run wrote the same one.
func compressBlob(b *manifest.Blob, m, old manifest.Manifest, opts options, enc encoder) (reused bool, err error) {
	dst := filepath.Join(opts.out, b.Name)
	b.Compressor = enc.String()
	if prev, ok := old.Blob(b.Name); ok && prev.Compressor == b.Compressor && sameFiles(*b, m, prev, old) {
		if info, err := os.Stat(dst); err == nil && info.Size() == prev.Size {
			b.Size = prev.Size
			return true, nil
		}
	}
	tmp, err := os.CreateTemp(opts.out, "."+b.Name+".*.tmp")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var sources []io.Reader
	for _, name := range b.Files {
		f, _ := m.File(name)
		src, err := os.Open(filepath.Join(opts.root, filepath.FromSlash(f.Path)))
		if err != nil {
			return false, fmt.Errorf("blob %s: %w", b.Name, err)
		}
		defer src.Close()
		sources = append(sources, src)
	}
	if err := enc.compress(tmp, io.MultiReader(sources...)); err != nil {
		return false, fmt.Errorf("blob %s: %w", b.Name, err)
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600; anyone may build knode
		return false, err
	}
	info, err := tmp.Stat()
	if err != nil {
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("blob %s: %w", b.Name, err)
	}
	b.Size = info.Size()
	return false, nil
}

// sameFiles reports whether two blobs hold the same files with the same contents.
func sameFiles(b manifest.Blob, m manifest.Manifest, prev manifest.Blob, old manifest.Manifest) bool {
	if strings.Join(b.Files, ",") != strings.Join(prev.Files, ",") {
		return false
	}
	for _, name := range b.Files {
		f, _ := m.File(name)
		o, ok := old.File(name)
		if !ok || o.Size != f.Size || o.SHA256 != f.SHA256 {
			return false
		}
	}
	return true
}

// writeImage writes an image tarball under root, from the files under root, and records its
// size and digests.
func writeImage(img *manifest.Image, root string) error {
	var buf bytes.Buffer
	digest, err := oci.Write(&buf, img.Image, os.DirFS(root))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	img.Size, img.SHA256, img.Digest = int64(buf.Len()), hex.EncodeToString(sum[:]), digest
	return writeFile(filepath.Join(root, filepath.FromSlash(img.Path)), buf.Bytes())
}

// writeFile replaces path's content unless it is already data, keeping its mtime for make.
func writeFile(path string, data []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removeStale deletes blobs of earlier payloads that the manifest no longer lists.
func removeStale(out string, m manifest.Manifest) error {
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := m.Blob(e.Name()); ok || !strings.HasSuffix(e.Name(), ".zst") {
			continue
		}
		if err := os.Remove(filepath.Join(out, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// report prints sizes per blob and file, the figures the release notes quote: each file's
// share of its blob's compressed bytes (see attribute) next to its staged size.
func report(w io.Writer, m manifest.Manifest, out string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "blob\tcompressed\tfile\tversion\tits share\tstaged\t")
	var staged, compressed int64
	for _, b := range m.Blobs {
		compressed += b.Size
		shares, err := attribute(filepath.Join(out, b.Name), b, m)
		if err != nil {
			return err
		}
		for i, name := range b.Files {
			f, _ := m.File(name)
			staged += f.Size
			blob, size := "", ""
			if i == 0 {
				blob, size = b.Name, mb(b.Size)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", blob, size, f.Name, f.Version, mb(shares[name]), mb(f.Size))
		}
	}
	for _, img := range m.Images {
		fmt.Fprintf(tw, "\t\timage %s\t%s\t\t%s\t\n", img.Name, img.Image.Tag(), mb(img.Size))
		staged += img.Size
	}
	fmt.Fprintf(tw, "total\t%s\t\t\t\t%s\t\n", mb(compressed), mb(staged))
	return tw.Flush()
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
