package registry

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

// ErrNotFound is returned by a Source that does not hold what was asked.
var ErrNotFound = errors.New("not found")

// Source is content the distribution endpoint serves: manifests and blobs by
// digest, tags by reference. Implementations: *Store (this node's images)
// and *Mirror (the store, then peers).
type Source interface {
	// Resolve returns the manifest digest a reference (a full image name
	// with its tag, such as docker.io/library/nginx:1.27) stands for.
	Resolve(ctx context.Context, ref string) (digest.Digest, error)
	// Size returns the size of the content named d.
	Size(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the content named d from its start, and its size. The
	// reader need not verify: the endpoint does.
	Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
}
