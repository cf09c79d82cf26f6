package registry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// staged is one file of an archive, copied into the staging directory and
// hashed on the way.
type staged struct {
	path   string
	digest digest.Digest
	size   int64
}

// staging holds an archive's files by their names in the archive. The
// names are map keys only: nothing is ever created at a path an archive
// chose.
type staging struct {
	dir   string
	files map[string]staged
	links map[string]string // symlink name -> target name
	n     int
}

// Limits on an archive's shape (its layers may be large).
const (
	maxArchiveFiles = 100000
	maxLinkHops     = 8
)

func newStaging(s *Store) (*staging, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, tmpDir), "import-")
	if err != nil {
		return nil, fmt.Errorf("staging directory: %w", err)
	}
	return &staging{dir: dir, files: map[string]staged{}, links: map[string]string{}}, nil
}

func (st *staging) remove() { os.RemoveAll(st.dir) }

// add copies one file in, hashing it.
func (st *staging) add(name string, r io.Reader) error {
	if st.n++; st.n > maxArchiveFiles {
		return fmt.Errorf("more than %d files", maxArchiveFiles)
	}
	p := filepath.Join(st.dir, "f"+strconv.Itoa(st.n))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	st.files[name] = staged{path: p, digest: digest.NewDigest(digest.SHA256, h), size: n}
	return nil
}

// addBytes stages content knode made (a docker-archive image's manifest).
func (st *staging) addBytes(name string, b []byte) (staged, error) {
	if err := st.add(name, bytes.NewReader(b)); err != nil {
		return staged{}, err
	}
	return st.files[name], nil
}

// lookup finds a file by its name, following the archive's symlinks.
func (st *staging) lookup(name string) (staged, bool) {
	name = path.Clean(name)
	for range maxLinkHops {
		if f, ok := st.files[name]; ok {
			return f, true
		}
		t, ok := st.links[name]
		if !ok {
			return staged{}, false
		}
		name = t
	}
	return staged{}, false
}

// readSmall reads a metadata file of the archive (JSON), bounded.
func (st *staging) readSmall(name string) ([]byte, error) {
	f, ok := st.lookup(name)
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if f.size > maxManifest {
		return nil, fmt.Errorf("%s: %d bytes exceed %d", name, f.size, maxManifest)
	}
	return os.ReadFile(f.path)
}

// readTar stages every file of a tar stream, gzip or zstd compressed or not.
func (st *staging) readTar(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	var in io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		in = zr
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if st.n == 0 {
				return errors.New("empty or not a tar archive")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		name := path.Clean("/" + hdr.Name)[1:]
		switch hdr.Typeflag {
		case tar.TypeReg:
			if err := st.add(name, tr); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		case tar.TypeSymlink, tar.TypeLink:
			t := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink && !path.IsAbs(t) {
				t = path.Join(path.Dir(name), t)
			}
			st.links[name] = path.Clean("/" + t)[1:]
		}
	}
}

// readDir stages an OCI layout directory (its files are copied: the import
// must not depend on the directory staying as it is).
func (st *staging) readDir(ctx context.Context, dir string) error {
	return filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !de.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return st.add(filepath.ToSlash(rel), f)
	})
}
