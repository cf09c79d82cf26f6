package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifest bounds a manifest or index read into memory (the
// distribution spec lets registries refuse more than 4 MiB).
const maxManifest = 4 << 20

// Docker's media types, which docker-archive images and older registries use.
const (
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// readManifest reads and verifies the manifest or index named d and returns
// its bytes and media type.
func readManifest(ctx context.Context, src Source, d digest.Digest) ([]byte, string, error) {
	rc, size, err := src.Open(ctx, d)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	if size > maxManifest {
		return nil, "", fmt.Errorf("manifest %s: %d bytes exceed %d", d, size, maxManifest)
	}
	b, err := io.ReadAll(newVerifier(rc, d, size))
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", d, err)
	}
	mt, err := manifestType(b)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", d, err)
	}
	return b, mt, nil
}

// manifestFields are the fields that tell manifests and indexes apart.
type manifestFields struct {
	MediaType string            `json:"mediaType"`
	Config    json.RawMessage   `json:"config"`
	Manifests []json.RawMessage `json:"manifests"`
}

// manifestType returns a manifest's media type: its own field, else what
// its shape says.
func manifestType(b []byte) (string, error) {
	var f manifestFields
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	switch {
	case f.MediaType == ocispec.MediaTypeImageManifest, f.MediaType == ocispec.MediaTypeImageIndex,
		f.MediaType == mediaDockerManifest, f.MediaType == mediaDockerList:
		return f.MediaType, nil
	case f.MediaType != "":
		return "", fmt.Errorf("unsupported media type %q", f.MediaType)
	case f.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case f.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", errors.New("neither an image manifest nor an index")
}

func isIndex(mt string) bool { return mt == ocispec.MediaTypeImageIndex || mt == mediaDockerList }

// children are the blobs a manifest or index (b, of type mt) names: an
// index's manifests, a manifest's config and layers, each with the label
// key by which containerd's garbage collector follows the reference.
func children(d digest.Digest, b []byte, mt string) ([]ocispec.Descriptor, []string, error) {
	var descs []ocispec.Descriptor
	var keys []string
	if isIndex(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, nil, fmt.Errorf("index %s: %w", d, err)
		}
		for i, m := range idx.Manifests {
			descs, keys = append(descs, m), append(keys, labelRefChild+"m."+strconv.Itoa(i))
		}
	} else {
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		descs, keys = append(descs, m.Config), append(keys, labelRefChild+"config")
		for i, l := range m.Layers {
			descs, keys = append(descs, l), append(keys, labelRefChild+"l."+strconv.Itoa(i))
		}
	}
	for _, c := range descs {
		if err := c.Digest.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%s %s: child %q: %w", mt, d, c.Digest, err)
		}
	}
	return descs, keys, nil
}

// parsed is what a walk needs of a manifest or index: its media type and
// the blobs it names.
type parsed struct {
	mt    string
	descs []ocispec.Descriptor
}

// readFunc reads, verifies and parses the manifest or index named d.
type readFunc func(ctx context.Context, d digest.Digest) (parsed, error)

// reader is the readFunc that reads every manifest from src.
func reader(src Source) readFunc {
	return func(ctx context.Context, d digest.Digest) (parsed, error) {
		b, mt, err := readManifest(ctx, src, d)
		if err != nil {
			return parsed{}, err
		}
		descs, _, err := children(d, b, mt)
		return parsed{mt: mt, descs: descs}, err
	}
}

// walk lists every blob an image reaches from the manifest or index d (d
// first). With all, a child manifest missing from src is an error; else it
// is skipped (an index names platforms a node need not hold).
func walk(ctx context.Context, src Source, d digest.Digest, all bool) ([]digest.Digest, error) {
	return walkWith(ctx, src, reader(src), d, all)
}

// walkWith is walk reading manifests with read and sizing blobs with src.
func walkWith(ctx context.Context, src Source, read readFunc, d digest.Digest, all bool) ([]digest.Digest, error) {
	m, err := read(ctx, d)
	if err != nil {
		return nil, err
	}
	out := []digest.Digest{d}
	for _, c := range m.descs {
		if isIndex(m.mt) {
			sub, err := walkWith(ctx, src, read, c.Digest, all)
			if errors.Is(err, ErrNotFound) && !all {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", d, err)
			}
			out = append(out, sub...)
			continue
		}
		size, err := src.Size(ctx, c.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		if size != c.Size {
			return nil, fmt.Errorf("manifest %s: blob %s has %d bytes, the manifest says %d", d, c.Digest, size, c.Size)
		}
		out = append(out, c.Digest)
	}
	return out, nil
}

// manifestCache keeps the manifests Held walked, parsed, by digest: content
// named by its digest never changes, and each was verified against it when
// read, so the announcement, recomputed every few seconds, reads from
// containerd only manifests it has not seen. Presence is still asked of
// containerd every time (a removed manifest is not walked from here), and
// what one Held call did not walk is dropped after it.
type manifestCache struct {
	mu sync.Mutex
	m  map[digest.Digest]parsed
}

// reader is a readFunc over l that answers from the cache and records in
// used what it answered.
func (c *manifestCache) reader(l listed, used map[digest.Digest]bool) readFunc {
	read := reader(l)
	return func(ctx context.Context, d digest.Digest) (parsed, error) {
		if _, ok := l.sizes[d]; !ok {
			return parsed{}, fmt.Errorf("manifest %s: %w", d, ErrNotFound)
		}
		used[d] = true
		c.mu.Lock()
		m, ok := c.m[d]
		c.mu.Unlock()
		if ok {
			return m, nil
		}
		m, err := read(ctx, d)
		if err != nil {
			return parsed{}, err
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[digest.Digest]parsed{}
		}
		c.m[d] = m
		c.mu.Unlock()
		return m, nil
	}
}

// keep drops every manifest not in used.
func (c *manifestCache) keep(used map[digest.Digest]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.m {
		if !used[d] {
			delete(c.m, d)
		}
	}
}

// gcLabels records, for the manifest or index d and every manifest below it
// that src holds, the labels by which containerd keeps its children; it
// returns d's descriptor (an image record's target).
func gcLabels(ctx context.Context, src Source, d digest.Digest, out map[digest.Digest]map[string]string) (Descriptor, error) {
	b, mt, err := readManifest(ctx, src, d)
	if err != nil {
		return Descriptor{}, err
	}
	descs, keys, err := children(d, b, mt)
	if err != nil {
		return Descriptor{}, err
	}
	labels := map[string]string{}
	for i, c := range descs {
		labels[keys[i]] = c.Digest.String()
		if isIndex(mt) {
			if _, err := gcLabels(ctx, src, c.Digest, out); err != nil && !errors.Is(err, ErrNotFound) {
				return Descriptor{}, err
			}
		}
	}
	out[d] = labels
	return Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, nil
}

// Held lists every blob containerd holds that an image record reaches
// completely, and the names this node imported whose images are complete:
// what this node announces. Blobs no record reaches any more (an image
// removed, a tag moved) drop out here, before containerd's garbage
// collector removes them.
func (s *Store) Held(ctx context.Context) (blobs []digest.Digest, names []Image, err error) {
	recs, err := s.cs.Records(ctx)
	if err != nil {
		return nil, nil, err
	}
	imgs, err := s.Images()
	if err != nil {
		return nil, nil, err
	}
	sizes, err := s.cs.Blobs(ctx)
	if err != nil {
		return nil, nil, err
	}
	src := listed{Store: s, sizes: sizes}
	used := map[digest.Digest]bool{}
	read := s.manifests.reader(src, used)
	defer s.manifests.keep(used)
	roots := map[digest.Digest]bool{}
	for _, r := range recs {
		roots[r.Target.Digest] = true
	}
	for _, im := range imgs {
		roots[im.Digest] = true
	}
	seen := map[digest.Digest]bool{}
	complete := map[digest.Digest]bool{}
	for root := range roots {
		ds, err := walkWith(ctx, src, read, root, false)
		if err != nil {
			continue // incomplete or damaged: not announced
		}
		complete[root] = true
		for _, d := range ds {
			if !seen[d] {
				seen[d] = true
				blobs = append(blobs, d)
			}
		}
	}
	for _, im := range imgs {
		if complete[im.Digest] {
			names = append(names, im)
		}
	}
	slices.Sort(blobs)
	return blobs, names, nil
}

// listed is the store with the sizes of one listing of containerd's
// content: a walk over every image asks containerd once for all sizes.
type listed struct {
	*Store
	sizes map[digest.Digest]int64
}

func (l listed) Size(_ context.Context, d digest.Digest) (int64, error) {
	n, ok := l.sizes[d]
	if !ok {
		return 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return n, nil
}
