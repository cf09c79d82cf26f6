package registry

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Peer is another node that may hold content.
type Peer struct {
	Name string
	Addr netip.Addr
}

// Peers is what the mirror knows of the cluster, from the gossiped image
// announcements of live members.
type Peers interface {
	// Holders lists the peers (not this node) that announce the blob d, in
	// the order to try them (random spreads the load over holders).
	Holders(d digest.Digest) []Peer
	// Latest returns the latest import of ref announced by any member,
	// this node included.
	Latest(ref string) (Image, bool)
}

// Mirror is the Source containerd reaches through the node-local endpoint:
// containerd's own content store first, then peers that announced the
// content, over mutual TLS. What it fetches is streamed to containerd as it
// arrives and verified on the way (containerd keeps it, so this node serves
// it in turn, and it is on disk once); a peer that fails mid-transfer is
// replaced by the next holder, from the byte where it stopped.
type Mirror struct {
	store  *Store
	peers  Peers
	client *http.Client
	port   int
	log    *slog.Logger

	stall time.Duration // stallTimeout

	mu   sync.Mutex
	from map[string]int64 // bytes fetched, by peer
	bad  map[string]bool  // peer + digest that served wrong bytes
}

// NewMirror is a mirror over store that fetches from peers on port with
// client (whose TLS configuration presents this node's certificate).
func NewMirror(store *Store, peers Peers, client *http.Client, port int, log *slog.Logger) *Mirror {
	return &Mirror{store: store, peers: peers, client: client, port: port, log: log, stall: stallTimeout,
		from: map[string]int64{}, bad: map[string]bool{}}
}

// Fetched returns the bytes fetched from each peer since start.
func (m *Mirror) Fetched() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.from))
	for k, v := range m.from {
		out[k] = v
	}
	return out
}

// Resolve implements Source: the later of the latest import of ref a
// master announces (the cluster's name) and this node's own import of it
// (which the gossip may not carry yet, and which is how a worker's import
// names the image on that worker). Tags containerd pulled from a registry
// are not answered: the registry's tag may have moved since.
func (m *Mirror) Resolve(ctx context.Context, ref string) (digest.Digest, error) {
	latest, ok := m.peers.Latest(ref)
	imgs, err := m.store.Images()
	if err != nil {
		return "", err
	}
	for _, im := range imgs {
		if im.Ref == ref && (!ok || im.Imported > latest.Imported) {
			latest, ok = im, true
		}
	}
	if !ok {
		return "", fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	return latest.Digest, nil
}

// Size implements Source: the store's, else the first holder's answer.
func (m *Mirror) Size(ctx context.Context, d digest.Digest) (int64, error) {
	if n, err := m.store.Size(ctx, d); err == nil {
		return n, nil
	}
	for _, p := range m.holders(d) {
		res, err := m.get(ctx, http.MethodHead, p, d, 0)
		if err != nil {
			m.log.Debug("peer size", "peer", p.Name, "digest", d, "err", err)
			continue
		}
		res.Body.Close()
		if res.ContentLength >= 0 {
			return res.ContentLength, nil
		}
	}
	return 0, fmt.Errorf("blob %s: %w on this node or any peer", d, ErrNotFound)
}

// Open implements Source: containerd's copy, else a transfer from peers.
func (m *Mirror) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if rc, n, err := m.store.Open(ctx, d); err == nil {
		return rc, n, nil
	}
	hs := m.holders(d)
	if len(hs) == 0 {
		return nil, 0, fmt.Errorf("blob %s: %w on this node or any peer", d, ErrNotFound)
	}
	t := &transfer{m: m, ctx: ctx, d: d, holders: hs, h: d.Algorithm().Hash(), size: -1}
	if err := t.next(); err != nil {
		t.Close()
		return nil, 0, err
	}
	return t, t.size, nil
}

// holders are the peers announcing d, in the order Peers gives, less those
// that served wrong bytes for it.
func (m *Mirror) holders(d digest.Digest) []Peer {
	hs := m.peers.Holders(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := hs[:0]
	for _, p := range hs {
		if !m.bad[p.Name+"/"+d.String()] {
			out = append(out, p)
		}
	}
	return out
}

// get asks peer p for the content d from byte off on.
func (m *Mirror) get(ctx context.Context, method string, p Peer, d digest.Digest, off int64) (*http.Response, error) {
	u := "https://" + netip.AddrPortFrom(p.Addr, uint16(m.port)).String() + "/v2/knode/blobs/" + d.String()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	res, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if off > 0 {
		want = http.StatusPartialContent
	}
	if res.StatusCode != want {
		res.Body.Close()
		return nil, fmt.Errorf("peer %s: %s", p.Name, res.Status)
	}
	return res, nil
}

// transfer is one blob streaming from peers to the client.
type transfer struct {
	m       *Mirror
	ctx     context.Context
	d       digest.Digest
	holders []Peer
	used    []string
	cur     *Peer
	body    io.ReadCloser
	h       hash.Hash
	size, n int64
	err     error
	cancel  context.CancelFunc // ends the request to the current peer
	stall   *time.Timer        // calls cancel when the peer stops sending
}

// stallTimeout is how long a peer may send nothing in the middle of a blob.
const stallTimeout = 15 * time.Second

// next opens the transfer at the next holder, from where the last stopped.
func (t *transfer) next() error {
	t.stop()
	var errs []error
	for len(t.holders) > 0 {
		p := t.holders[0]
		t.holders = t.holders[1:]
		ctx, cancel := context.WithCancel(t.ctx)
		res, err := t.m.get(ctx, http.MethodGet, p, t.d, t.n)
		if err != nil {
			cancel()
			errs = append(errs, err)
			continue
		}
		// A peer that stops sending is given up after stallTimeout (a
		// hostile one could otherwise hold the pull for ever).
		t.cancel, t.stall = cancel, time.AfterFunc(t.m.stall, cancel)
		total := res.ContentLength + t.n
		if res.ContentLength < 0 || t.size >= 0 && total != t.size {
			t.stop()
			res.Body.Close()
			errs = append(errs, fmt.Errorf("peer %s: blob of %d bytes, not %d", p.Name, total, t.size))
			continue
		}
		t.size, t.body, t.cur = total, res.Body, &p
		t.used = append(t.used, p.Name)
		if t.n > 0 {
			t.m.log.Info("blob transfer resumed at another peer", "digest", t.d, "peer", p.Name, "offset", t.n)
		}
		return nil
	}
	return fmt.Errorf("blob %s: no peer could serve it: %w", t.d, errors.Join(append(errs, ErrNotFound)...))
}

// Read streams from the current peer, moving to the next on a failure; the
// last bytes are withheld unless the whole blob matched its digest.
func (t *transfer) Read(p []byte) (int, error) {
	for t.err == nil {
		if t.n == t.size {
			t.err = io.EOF
			break
		}
		if rest := t.size - t.n; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := t.body.Read(p)
		if n > 0 {
			t.stall.Reset(t.m.stall)
			t.h.Write(p[:n])
			t.n += int64(n)
			t.m.count(t.cur.Name, int64(n))
			if t.n == t.size {
				if got := digest.NewDigest(t.d.Algorithm(), t.h); got != t.d {
					t.m.distrust(t.used, t.d)
					t.err = fmt.Errorf("blob %s from %v: %w (got %s)", t.d, t.used, ErrDigest, got)
					return 0, t.err
				}
			}
			return n, nil
		}
		if err == nil {
			continue
		}
		t.m.log.Warn("peer failed mid-transfer", "digest", t.d, "peer", t.cur.Name, "offset", t.n, "err", err)
		if nerr := t.next(); nerr != nil {
			t.err = nerr
		}
	}
	return 0, t.err
}

// stop ends the request to the current peer.
func (t *transfer) stop() {
	if t.stall != nil {
		t.stall.Stop()
		t.cancel()
		t.stall = nil
	}
	if t.body != nil {
		t.body.Close()
		t.body = nil
	}
}

// Close ends the transfer.
func (t *transfer) Close() error {
	t.stop()
	return nil
}

func (m *Mirror) count(peer string, n int64) {
	m.mu.Lock()
	m.from[peer] += n
	m.mu.Unlock()
}

// distrust stops asking a peer for content it served wrong (when it alone
// served the transfer, it is the culprit; when several did, all of them).
func (m *Mirror) distrust(peers []string, d digest.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.bad) > 4096 {
		clear(m.bad)
	}
	for _, p := range peers {
		m.bad[p+"/"+d.String()] = true
	}
	m.log.Warn("peers served content that does not match its digest", "digest", d, "peers", peers)
}
