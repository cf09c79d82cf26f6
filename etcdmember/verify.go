package etcdmember

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Errors of VerifySnapshot, for the caller to tell a wrong file from a
// damaged one.
var (
	ErrNotSnapshot = errors.New("not an etcd snapshot")
	ErrChecksum    = errors.New("etcd snapshot checksum mismatch")
)

// A snapshot streamed by etcd's maintenance API (what Save writes) is the
// member's bbolt database followed by the SHA-256 of those bytes. bbolt
// writes whole pages (4 KiB here, always a multiple of 512 bytes), which is
// how etcdutl itself tells a snapshot with its hash from a copied db file.
const (
	boltMagic      = 0xED0CDAED
	boltMagicAt    = 16 // after the first page's header (id, flags, count, overflow)
	boltMinSize    = 2 * 512
	snapshotSuffix = sha256.Size
)

// SnapshotCheck is what VerifySnapshot found.
type SnapshotCheck struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // of the database, as the snapshot's own trailer says
}

// VerifySnapshot checks, reading the file once and changing nothing, that
// path is an etcd snapshot as `knode etcd snapshot save` writes it: a bbolt
// database (its magic number) followed by the SHA-256 of its bytes, which must
// match. A file of any other shape is ErrNotSnapshot, a damaged one
// ErrChecksum.
func VerifySnapshot(path string) (SnapshotCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return SnapshotCheck{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SnapshotCheck{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	size := fi.Size()
	if !fi.Mode().IsRegular() || size < boltMinSize+snapshotSuffix || size%512 != snapshotSuffix {
		return SnapshotCheck{}, fmt.Errorf("%s (%d bytes): %w (want a file written by `knode etcd snapshot save`: a database of whole pages and its SHA-256)", path, size, ErrNotSnapshot)
	}
	var head [boltMagicAt + 4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return SnapshotCheck{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	if binary.LittleEndian.Uint32(head[boltMagicAt:]) != boltMagic {
		return SnapshotCheck{}, fmt.Errorf("%s: %w (no bbolt database header)", path, ErrNotSnapshot)
	}
	h := sha256.New()
	h.Write(head[:])
	if _, err := io.CopyN(h, f, size-snapshotSuffix-int64(len(head))); err != nil {
		return SnapshotCheck{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	var trailer [snapshotSuffix]byte
	if _, err := io.ReadFull(f, trailer[:]); err != nil {
		return SnapshotCheck{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	sum := h.Sum(nil)
	if string(sum) != string(trailer[:]) {
		return SnapshotCheck{}, fmt.Errorf("%s: %w: the file says %x, its bytes hash to %x (damaged or truncated: take another snapshot)", path, ErrChecksum, trailer[:8], sum[:8])
	}
	return SnapshotCheck{Path: path, Size: size, SHA256: fmt.Sprintf("%x", sum)}, nil
}

// ClusterID returns the ID of the etcd cluster of the member at the client's
// first endpoint, from its status (no quorum needed): two members with
// different IDs belong to different clusters, as after a restore.
func (c *Client) ClusterID(ctx context.Context) (uint64, error) {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ep := c.cfg.Endpoints[0]
	resp, err := c.cli.Status(sctx, ep)
	if err != nil {
		return 0, fmt.Errorf("etcd status of %s: %w", ep, err)
	}
	return resp.Header.GetClusterId(), nil
}

// Healthy reports whether the cluster of the client's endpoints (dial one to
// ask about one member) has a leader and serves a linearizable read, and how
// many members it has.
func (c *Client) Healthy(ctx context.Context) (members int, err error) {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ep := c.cfg.Endpoints[0]
	st, err := c.cli.Status(sctx, ep)
	if err != nil {
		return 0, fmt.Errorf("etcd status of %s: %w", ep, err)
	}
	if st.Leader == 0 {
		return 0, fmt.Errorf("etcd member %s has no leader (no quorum)", ep)
	}
	// A linearizable read needs the quorum the status alone does not prove.
	if _, err := c.cli.Get(sctx, "health"); err != nil {
		return 0, fmt.Errorf("etcd read through %s: %w", ep, err)
	}
	ms, err := c.cli.MemberList(sctx)
	if err != nil {
		return 0, fmt.Errorf("etcd member list through %s: %w", ep, err)
	}
	return len(ms.Members), nil
}
