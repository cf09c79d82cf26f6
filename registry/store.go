package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/internal/atomicfile"
)

// Store is a node's images: content-addressed blobs and the references
// (image names) that point into them, under one directory of the data
// directory:
//
//	blobs/sha256/<hex>   manifests, indexes, configs and layers, each
//	                     renamed into place only after its hash matched
//	refs.json            image name -> manifest digest, import time
//	tmp/                 staging of imports and peer transfers
//	import/              tarballs dropped here are imported by the agent
//	.lock                serialises writers of refs.json (CLI and agent)
//
// A blob no reference reaches is never announced; an import writes its
// references last, so a failed one leaves none.
type Store struct{ root string }

// Image is one reference this node holds.
type Image struct {
	// Ref is the full image name with its tag, e.g. docker.io/library/nginx:1.27.
	Ref string `json:"ref"`
	// Digest names its manifest (or index).
	Digest digest.Digest `json:"digest"`
	// Imported is when the reference was imported (unix nanoseconds) on
	// the node that imported it: of two digests for one name, the later
	// import wins everywhere.
	Imported int64 `json:"imported"`
}

type refsFile struct {
	Images []Image `json:"images"`
}

// Names under a store's root.
const (
	blobsDir  = "blobs/sha256"
	tmpDir    = "tmp"
	refsName  = "refs.json"
	lockName  = ".lock"
	ImportDir = "import"
)

// OpenStore opens (creating) the store at root.
func OpenStore(root string) (*Store, error) {
	for _, d := range []string{blobsDir, tmpDir, ImportDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store %s: %w", root, err)
		}
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, blobsDir, d.Encoded())
}

// Has reports whether the blob d is in the store.
func (s *Store) Has(d digest.Digest) bool {
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// Size implements Source.
func (s *Store) Size(_ context.Context, d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Open implements Source.
func (s *Store) Open(_ context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, fi.Size(), nil
}

// Resolve implements Source from this node's references.
func (s *Store) Resolve(_ context.Context, ref string) (digest.Digest, error) {
	imgs, err := s.Images()
	if err != nil {
		return "", err
	}
	for _, im := range imgs {
		if im.Ref == ref {
			return im.Digest, nil
		}
	}
	return "", fmt.Errorf("image %s: %w", ref, ErrNotFound)
}

// Images lists the references held, sorted by name.
func (s *Store) Images() ([]Image, error) {
	b, err := os.ReadFile(filepath.Join(s.root, refsName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image references: %w", err)
	}
	var rf refsFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", filepath.Join(s.root, refsName), err)
	}
	return rf.Images, nil
}

// Ingest copies content named d from r into the store, verifying its size
// and digest before it becomes visible. Content already held is not read.
func (s *Store) Ingest(r io.Reader, d digest.Digest, size int64) error {
	if s.Has(d) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "blob-")
	if err != nil {
		return fmt.Errorf("stage blob %s: %w", d, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, newVerifier(r, d, size))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	return s.place(tmp.Name(), d)
}

// place renames a verified staged file into the blobs.
func (s *Store) place(staged string, d digest.Digest) error {
	if err := os.Chmod(staged, 0o600); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := os.Rename(staged, s.blobPath(d)); err != nil {
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	return atomicfile.SyncDir(filepath.Join(s.root, blobsDir))
}

// SetRefs points each image's name at its digest, unless the store already
// holds a later import of that name; it is the commit point of an import.
// It returns the references that changed.
func (s *Store) SetRefs(imgs []Image) ([]Image, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := s.Images()
	if err != nil {
		return nil, err
	}
	var changed []Image
	for _, im := range imgs {
		i := slices.IndexFunc(cur, func(c Image) bool { return c.Ref == im.Ref })
		switch {
		case i < 0:
			cur = append(cur, im)
		case cur[i].Digest == im.Digest || cur[i].Imported > im.Imported:
			continue
		default:
			cur[i] = im
		}
		changed = append(changed, im)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	slices.SortFunc(cur, func(a, b Image) int {
		if a.Ref < b.Ref {
			return -1
		}
		if a.Ref > b.Ref {
			return 1
		}
		return 0
	})
	b, err := json.MarshalIndent(refsFile{Images: cur}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(s.root, refsName), append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write image references: %w", err)
	}
	return changed, nil
}

// lock takes the store's writer lock (flock: released when its holder dies).
func (s *Store) lock() (func(), error) {
	p := filepath.Join(s.root, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
