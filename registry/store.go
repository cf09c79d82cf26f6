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
	"strings"
	"syscall"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/internal/atomicfile"
)

// Store is a node's images: knode's names for them under one directory of
// the data directory, over containerd's content store (Containerd), which
// holds every blob once, whether knode imported it, fetched it from a peer
// or containerd pulled it from a registry:
//
//	refs.json   image name -> manifest digest, import time: the names this
//	            node imported (containerd's own records are rewritten by
//	            every pull, labels and all, so they cannot carry these)
//	tmp/        staging of imports
//	import/     tarballs dropped here are imported by the agent
//	.lock       serialises writers of refs.json (CLI and agent)
//
// An import writes its blobs into containerd under a lease, then
// containerd's image records, then the names here, so a failed one leaves
// no name and nothing containerd's garbage collector does not remove.
type Store struct {
	root      string
	cs        *Containerd
	manifests manifestCache // Held's
}

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
	tmpDir    = "tmp"
	refsName  = "refs.json"
	lockName  = ".lock"
	ImportDir = "import"
)

// OpenStore opens (creating) the store at root over containerd's content.
func OpenStore(root string, cs *Containerd) (*Store, error) {
	for _, d := range []string{tmpDir, ImportDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store %s: %w", root, err)
		}
	}
	return &Store{root: root, cs: cs}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Containerd is the content store under the names.
func (s *Store) Containerd() *Containerd { return s.cs }

// Has reports whether containerd holds the blob d.
func (s *Store) Has(ctx context.Context, d digest.Digest) bool {
	_, err := s.cs.Size(ctx, d)
	return err == nil
}

// Size implements Source from containerd's content store.
func (s *Store) Size(ctx context.Context, d digest.Digest) (int64, error) {
	return s.cs.Size(ctx, d)
}

// Open implements Source from containerd's content store.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	return s.cs.Open(ctx, d)
}

// Resolve implements Source from the names this node imported (never from
// containerd's records of what it pulled: a registry's tag moves, and
// answering it from an old pull would hide the move).
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

// Images lists the names this node imported, sorted.
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

// SetRefs points each image's name at its digest, unless the store already
// holds a later import of that name; it is the commit point of an import.
// It returns the references that changed.
func (s *Store) SetRefs(imgs []Image) ([]Image, error) {
	var changed []Image
	err := s.editRefs(func(cur []Image) []Image {
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
		return cur
	})
	return changed, err
}

// RemoveRefs drops the names refs and returns what they named; a name this
// node did not import is left out of the result.
func (s *Store) RemoveRefs(refs []string) ([]Image, error) {
	var gone []Image
	err := s.editRefs(func(cur []Image) []Image {
		return slices.DeleteFunc(cur, func(c Image) bool {
			if slices.Contains(refs, c.Ref) {
				gone = append(gone, c)
				return true
			}
			return false
		})
	})
	return gone, err
}

// editRefs rewrites refs.json with edit's result, under the writer lock;
// nothing is written when edit changed nothing.
func (s *Store) editRefs(edit func([]Image) []Image) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := s.Images()
	if err != nil {
		return err
	}
	before := slices.Clone(cur)
	cur = edit(cur)
	if slices.Equal(before, cur) {
		return nil
	}
	slices.SortFunc(cur, func(a, b Image) int { return strings.Compare(a.Ref, b.Ref) })
	b, err := json.MarshalIndent(refsFile{Images: cur}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.root, refsName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write image references: %w", err)
	}
	return nil
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

// ErrNotImported is returned for a name this node's knode did not import.
var ErrNotImported = errors.New("not imported on this node by knode")

// Remove drops the names refs this node imported, and containerd's records
// of them where they still point at what was imported, with the aliases
// containerd's CRI made for the same image when it unpacked it
// (repo@sha256:..., and sha256:<image ID>) unless another tag still names
// it; containerd's garbage collector then removes the blobs nothing else
// references, before this returns. A name this node did not import
// (containerd pulled it, or another node imported it) fails the whole call
// before anything changes: knode removes only what it put there.
func (s *Store) Remove(ctx context.Context, refs []string) ([]Image, error) {
	imgs, err := s.Images()
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if !slices.ContainsFunc(imgs, func(im Image) bool { return im.Ref == r }) {
			return nil, fmt.Errorf("image %s: %w", r, ErrNotImported)
		}
	}
	gone, err := s.RemoveRefs(refs)
	if err != nil {
		return nil, err
	}
	for _, im := range gone {
		if err := s.removeRecords(ctx, im); err != nil {
			return gone, fmt.Errorf("image %s: %w", im.Ref, err)
		}
	}
	return gone, nil
}

// removeRecords deletes containerd's record im.Ref if it still points at
// im.Digest, then the CRI's aliases of that image if no tag names it any more.
func (s *Store) removeRecords(ctx context.Context, im Image) error {
	recs, err := s.cs.Records(ctx)
	if err != nil {
		return err
	}
	var own, tagged bool
	var aliases []string
	for _, r := range recs {
		switch {
		case r.Target.Digest != im.Digest:
		case r.Name == im.Ref:
			own = true
		case isAlias(r.Name):
			aliases = append(aliases, r.Name)
		default:
			tagged = true // another tag keeps the image, and its aliases
		}
	}
	if !own {
		return nil // containerd's name was removed or moved since: not knode's any more
	}
	if tagged {
		aliases = nil
	}
	for _, a := range append(aliases, im.Ref) {
		if err := s.cs.DeleteRecord(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// isAlias tells the names containerd's CRI gives an image besides its tags:
// repo@sha256:<manifest> and sha256:<image ID>.
func isAlias(name string) bool {
	return strings.Contains(name, "@") || strings.HasPrefix(name, "sha256:")
}
