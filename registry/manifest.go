package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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

// walk lists every blob an image reaches from the manifest or index d (d
// first). With all, a child manifest missing from src is an error; else it
// is skipped (an index names platforms a node need not hold).
func walk(ctx context.Context, src Source, d digest.Digest, all bool) ([]digest.Digest, error) {
	b, mt, err := readManifest(ctx, src, d)
	if err != nil {
		return nil, err
	}
	out := []digest.Digest{d}
	if isIndex(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w", d, err)
		}
		for _, m := range idx.Manifests {
			if err := m.Digest.Validate(); err != nil {
				return nil, fmt.Errorf("index %s: child %q: %w", d, m.Digest, err)
			}
			sub, err := walk(ctx, src, m.Digest, all)
			if errors.Is(err, ErrNotFound) && !all {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("index %s: %w", d, err)
			}
			out = append(out, sub...)
		}
		return out, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := l.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("manifest %s: blob %q: %w", d, l.Digest, err)
		}
		size, err := src.Size(ctx, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		if size != l.Size {
			return nil, fmt.Errorf("manifest %s: blob %s has %d bytes, the manifest says %d", d, l.Digest, size, l.Size)
		}
		out = append(out, l.Digest)
	}
	return out, nil
}

// Held lists every blob the store's references reach: what this node
// announces. A reference whose blobs are damaged is left out.
func (s *Store) Held(ctx context.Context) ([]digest.Digest, error) {
	imgs, err := s.Images()
	if err != nil {
		return nil, err
	}
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	for _, im := range imgs {
		ds, err := walk(ctx, s, im.Digest, false)
		if err != nil {
			continue
		}
		for _, d := range ds {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}
