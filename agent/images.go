package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/gossip"
	"knode.dev/knode/registry"
	"knode.dev/knode/roles"
)

// ImagesOptions configure the node's image distribution: its store, the mirror
// containerd asks first (on 127.0.0.1:Port) and the members-only endpoint
// peers fetch from (on the node's agreed address, same port).
type ImagesOptions struct {
	// Store is the image store's directory (under the data directory):
	// knode's names and the import directory.
	Store string
	// Containerd is containerd's socket: its content store holds the blobs.
	Containerd string
	// Unpack has containerd unpack an image just imported (nil: left to
	// the kubelet's first pull).
	Unpack func(ctx context.Context, ref string) error
	// Port is the peer endpoint's port on every node.
	Port int
	// Local is where containerd reaches the mirror (zero: 127.0.0.1:Port).
	Local netip.AddrPort
	TLS   registry.PeerTLS
}

// images is the running image distribution; its loop owns the announcement
// and the import directory.
type images struct {
	a      *Agent
	store  *registry.Store
	mirror *registry.Mirror
	served *registry.Served
	log    *slog.Logger

	mu       sync.Mutex
	servers  []*http.Server
	peerAddr netip.Addr // where the peer endpoint listens (once known)
	lastWarn string     // owned by the loop
}

// startImages opens the store and serves the local mirror; the peer
// endpoint starts once this node's address is decided.
func (a *Agent) startImages() error {
	o := a.opts.Images
	if o == nil {
		return nil
	}
	cs, err := registry.DialContainerd(o.Containerd, registry.CRINamespace)
	if err != nil {
		return err
	}
	st, err := registry.OpenStore(o.Store, cs)
	if err != nil {
		cs.Close()
		return err
	}
	log := a.log.With("component", "images")
	im := &images{a: a, store: st, log: log}
	im.mirror = registry.NewMirror(st, imagePeers{a}, o.TLS.Client(), o.Port, log)
	im.served = registry.PeerHandler(st, imagePeers{a}.member, log)
	local := o.Local
	if !local.IsValid() {
		local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(o.Port))
	}
	if err := im.serve(local, registry.Handler(im.mirror, log), false); err != nil {
		return err
	}
	a.images = im
	a.spawn(im.loop)
	return nil
}

// serve listens on addr (with the peer TLS configuration when withTLS).
func (im *images) serve(addr netip.AddrPort, h http.Handler, withTLS bool) error {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("image mirror: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(im.log.Handler(), slog.LevelDebug)}
	if withTLS {
		srv.TLSConfig = im.a.opts.Images.TLS.ServerConfig()
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	im.mu.Lock()
	im.servers = append(im.servers, srv)
	im.mu.Unlock()
	go srv.Serve(ln)
	im.log.Info("image endpoint listening", "addr", addr.String(), "peers", withTLS)
	return nil
}

// loop imports what appears in the import directory, keeps the peer
// endpoint on this node's address and re-announces what the node holds
// when it changed, until the agent stops.
func (im *images) loop() {
	defer im.close()
	var announced *gossip.Images
	seen := map[string]string{} // import file -> size and mtime tried
	tick := func() {
		im.importDir(seen)
		im.keepPeerEndpoint()
		ann, err := im.holdings()
		if err != nil {
			im.warnOnce("read the image store", err)
			return
		}
		if announced != nil && sameHoldings(*announced, ann) {
			return
		}
		if err := im.a.g.PublishImages(ann); err != nil {
			if !errors.Is(err, gossip.ErrUnbound) {
				im.warnOnce("announce images", err)
			}
			return
		}
		im.log.Info("images announced", "images", len(ann.Refs))
		announced = &ann
	}
	tick()
	im.a.every(im.a.interval(), tick)
}

// holdings is the announcement of what the store holds: the names whose
// images are complete, and a filter of their blobs.
func (im *images) holdings() (gossip.Images, error) {
	held, names, err := im.store.Held(im.a.ctx)
	if err != nil {
		return gossip.Images{}, err
	}
	ds := make([][32]byte, 0, len(held))
	for _, d := range held {
		ds = append(ds, raw(d))
	}
	ann := gossip.Images{Gen: uint64(time.Now().UnixNano()), Blobs: gossip.NewBloom(ds)}
	for _, i := range names {
		ann.Refs = append(ann.Refs, gossip.ImageRef{Ref: i.Ref, Digest: raw(i.Digest), Imported: i.Imported})
	}
	return ann, nil
}

// sameHoldings reports whether two announcements say the same.
func sameHoldings(a, b gossip.Images) bool {
	return slices.Equal(a.Refs, b.Refs) && bytes.Equal(a.Blobs, b.Blobs)
}

// importDir imports every archive that appeared (or changed) in the store's
// import directory; a file that fails is tried again only once it changes.
func (im *images) importDir(seen map[string]string) {
	dir := filepath.Join(im.store.Root(), registry.ImportDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || strings.HasPrefix(e.Name(), ".") || !(fi.Mode().IsRegular() || fi.IsDir()) {
			continue
		}
		key := fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
		if seen[e.Name()] == key || time.Since(fi.ModTime()) < time.Second {
			continue // tried already, or still being written
		}
		seen[e.Name()] = key
		p := filepath.Join(dir, e.Name())
		imgs, err := im.store.Import(im.a.ctx, p, time.Now())
		if err != nil {
			im.log.Error("import failed (fix or replace the file: it is tried again when it changes)", "file", p, "err", err)
			continue
		}
		for _, i := range imgs {
			im.log.Info("image imported", "file", p, "image", i.Ref, "digest", i.Digest)
			im.unpack(i.Ref)
		}
	}
}

// keepPeerEndpoint serves peers on the address this node's decision binds.
func (im *images) keepPeerEndpoint() {
	as, ok := im.a.Assignment()
	im.mu.Lock()
	have := im.peerAddr
	im.mu.Unlock()
	if !ok || !as.Active() || have == as.Addr {
		return
	}
	if have.IsValid() {
		im.warnOnce("node address changed from "+have.String()+" to "+as.Addr.String()+": the peer endpoint stays on the old one until the agent restarts", nil)
		return
	}
	if err := im.serve(netip.AddrPortFrom(as.Addr, uint16(im.a.opts.Images.Port)), im.served, true); err != nil {
		im.warnOnce("peer endpoint not serving (peers cannot fetch from this node; retried every few seconds)", err)
		return
	}
	im.mu.Lock()
	im.peerAddr = as.Addr
	im.mu.Unlock()
}

// warnOnce logs a failure of the loop once until it changes.
func (im *images) warnOnce(msg string, err error) {
	key := fmt.Sprint(msg, err)
	if key == im.lastWarn {
		return
	}
	im.lastWarn = key
	im.log.Warn(msg, "err", err)
}

// unpack has containerd unpack an imported image, so that a pod with
// imagePullPolicy IfNotPresent starts from it; a failure is only logged
// (the kubelet's first pull unpacks it).
func (im *images) unpack(ref string) {
	u := im.a.opts.Images.Unpack
	if u == nil {
		return
	}
	if err := u(im.a.ctx, ref); err != nil {
		im.log.Warn("imported image not unpacked (the kubelet's first pull will)", "image", ref, "err", err)
	}
}

func (im *images) close() {
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, s := range im.servers {
		s.Close()
	}
	im.servers = nil
	im.store.Containerd().Close()
}

// withdraw announces that this node holds nothing any more (before it
// leaves the cluster).
func (a *Agent) withdrawImages() {
	if _, had := a.state.Snapshot().Images[a.id.Name]; !had {
		return
	}
	if err := a.g.PublishImages(gossip.Images{Gen: uint64(time.Now().UnixNano())}); err != nil {
		a.log.Warn("withdraw image announcement", "err", err)
	}
}

// ImageStats are the bytes this node's mirror fetched from each peer and
// its peer endpoint served to each; nil maps without images.
func (a *Agent) ImageStats() (fetched, served map[string]int64) {
	if a.images == nil {
		return nil, nil
	}
	return a.images.mirror.Fetched(), a.images.served.To()
}

// fromRaw is the digest of 32 raw sha256 bytes.
func fromRaw(b [32]byte) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(b[:]))
}

// raw is a sha256 digest's 32 bytes.
func raw(d digest.Digest) (out [32]byte) {
	b, _ := hex.DecodeString(d.Encoded())
	copy(out[:], b)
	return out
}

// imagePeers answers the mirror from the gossiped state: only nodes with an
// active decision, not being removed and alive count.
type imagePeers struct{ a *Agent }

func (p imagePeers) member(name string) bool {
	snap := p.a.state.Snapshot()
	as, ok := snap.Assignments[name]
	return ok && as.Active() && !snap.Nodes[name].Removed
}

// Holders implements registry.Peers: live members whose filter holds d, in
// random order.
func (p imagePeers) Holders(d digest.Digest) []registry.Peer {
	snap := p.a.state.Snapshot()
	alive := p.a.g.Alive()
	want := raw(d)
	var out []registry.Peer
	for name, ann := range snap.Images {
		as := snap.Assignments[name]
		if name == p.a.id.Name || !alive[name] || !p.member(name) || !gossip.BloomHas(ann.Blobs, want) {
			continue
		}
		out = append(out, registry.Peer{Name: name, Addr: as.Addr})
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Latest implements registry.Peers: the latest import of ref a master
// announces (ties broken by digest, so every node picks the same). Only
// masters name images for the cluster: a join token admits a machine, it
// does not let it point nginx:latest at its own image on every node (an
// import on a worker names the image on that worker only; anyone's blobs
// are fetched by digest and verified, so any holder may serve them).
func (p imagePeers) Latest(ref string) (registry.Image, bool) {
	snap := p.a.state.Snapshot()
	masters := roles.Masters(snap)
	var best registry.Image
	for name, ann := range snap.Images {
		if !p.member(name) || !slices.Contains(masters, name) {
			continue
		}
		for _, r := range ann.Refs {
			d := fromRaw(r.Digest)
			if r.Ref == ref && (r.Imported > best.Imported || r.Imported == best.Imported && d > best.Digest) {
				best = registry.Image{Ref: ref, Digest: d, Imported: r.Imported}
			}
		}
	}
	return best, best.Digest != ""
}

var _ registry.Peers = imagePeers{}
