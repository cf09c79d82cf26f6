package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrArchive marks an archive that is not a valid image archive (corrupt,
// truncated, or of an unknown kind); nothing of it was imported.
var ErrArchive = errors.New("not a valid image archive")

// Import reads the images of an OCI layout (a tar file or a directory) or a
// docker-archive (docker save) tar, either tar optionally gzip or zstd
// compressed, into containerd's content store. Every blob is verified and
// every image walked completely before anything is written; containerd
// checks each blob again as it commits it, under a lease; the records and
// names are written last, with now as their import time, so an error
// leaves no image behind.
func (s *Store) Import(ctx context.Context, p string, now time.Time) ([]Image, error) {
	st, err := newStaging(s)
	if err != nil {
		return nil, err
	}
	defer st.remove()
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if fi.IsDir() {
		err = st.readDir(ctx, p)
	} else {
		var f *os.File
		if f, err = os.Open(p); err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		err = st.readTar(ctx, f)
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w: %w", p, ErrArchive, err)
	}
	var imgs []Image
	var blobs map[digest.Digest]staged
	switch {
	case has(st, "index.json"):
		imgs, blobs, err = s.ociImages(ctx, st)
	case has(st, "manifest.json"):
		imgs, blobs, err = s.dockerImages(ctx, st)
	default:
		err = errors.New("neither index.json (OCI layout) nor manifest.json (docker save) in it")
	}
	if err == nil && len(imgs) == 0 {
		err = errors.New("no named image in it (OCI layouts need an org.opencontainers.image.ref.name or io.containerd.image.name annotation with the full image name)")
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w: %w", p, ErrArchive, err)
	}
	for i := range imgs {
		imgs[i].Imported = now.UnixNano()
	}
	if err := s.commit(ctx, imgs, stagedSource{s: s, blobs: blobs}, blobs); err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	return imgs, nil
}

func has(st *staging, name string) bool { _, ok := st.lookup(name); return ok }

// stagedSource is a Source over an archive's verified blobs, then the
// store's: an image may share layers with one already imported.
type stagedSource struct {
	s     *Store
	blobs map[digest.Digest]staged
}

func (ss stagedSource) Resolve(context.Context, string) (digest.Digest, error) {
	return "", ErrNotFound
}

func (ss stagedSource) Size(ctx context.Context, d digest.Digest) (int64, error) {
	if f, ok := ss.blobs[d]; ok {
		return f.size, nil
	}
	return ss.s.Size(ctx, d)
}

func (ss stagedSource) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	if f, ok := ss.blobs[d]; ok {
		r, err := os.Open(f.path)
		return r, f.size, err
	}
	return ss.s.Open(ctx, d)
}

// ociImages reads an OCI layout: every blob under blobs/sha256 must match
// its name, and every image its index names must be complete.
func (s *Store) ociImages(ctx context.Context, st *staging) ([]Image, map[digest.Digest]staged, error) {
	blobs := map[digest.Digest]staged{}
	for name := range st.files {
		hex, ok := strings.CutPrefix(name, "blobs/sha256/")
		if !ok {
			continue
		}
		f, _ := st.lookup(name)
		if f.digest.Encoded() != hex {
			return nil, nil, fmt.Errorf("%s does not match its digest (holds %s): the archive is corrupt", name, f.digest)
		}
		blobs[f.digest] = f
	}
	b, err := st.readSmall("index.json")
	if err != nil {
		return nil, nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, nil, fmt.Errorf("index.json: %w", err)
	}
	src := stagedSource{s: s, blobs: blobs}
	used := map[digest.Digest]staged{}
	var imgs []Image
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return nil, nil, fmt.Errorf("index.json: %q: %w", m.Digest, err)
		}
		ds, err := walk(ctx, src, m.Digest, true)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range ds {
			if f, ok := blobs[d]; ok {
				used[d] = f
			}
		}
		name := m.Annotations["io.containerd.image.name"]
		if name == "" {
			name = m.Annotations[ocispec.AnnotationRefName]
		}
		if name == "" {
			continue
		}
		ref, err := NormalizeRef(name)
		if err != nil {
			return nil, nil, fmt.Errorf("index.json: %w", err)
		}
		imgs = append(imgs, Image{Ref: ref, Digest: m.Digest})
	}
	return imgs, used, nil
}

// dockerManifest is one image of docker save's manifest.json.
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// dockerImages turns docker save's images into OCI manifests: the config
// and layer files become blobs as they are (their digests computed here).
func (s *Store) dockerImages(ctx context.Context, st *staging) ([]Image, map[digest.Digest]staged, error) {
	b, err := st.readSmall("manifest.json")
	if err != nil {
		return nil, nil, err
	}
	var dms []dockerManifest
	if err := json.Unmarshal(b, &dms); err != nil {
		return nil, nil, fmt.Errorf("manifest.json: %w", err)
	}
	blobs := map[digest.Digest]staged{}
	var imgs []Image
	for i, dm := range dms {
		cfg, ok := st.lookup(dm.Config)
		if !ok {
			return nil, nil, fmt.Errorf("manifest.json: image %d: config %q is not in the archive", i, dm.Config)
		}
		if cfg.size > maxManifest {
			return nil, nil, fmt.Errorf("manifest.json: image %d: config of %d bytes", i, cfg.size)
		}
		blobs[cfg.digest] = cfg
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfg.digest, Size: cfg.size},
			Layers:    []ocispec.Descriptor{},
		}
		for _, l := range dm.Layers {
			f, ok := st.lookup(l)
			if !ok {
				return nil, nil, fmt.Errorf("manifest.json: image %d: layer %q is not in the archive", i, l)
			}
			mt, err := layerType(f)
			if err != nil {
				return nil, nil, err
			}
			blobs[f.digest] = f
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: f.digest, Size: f.size})
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		mf, err := st.addBytes(fmt.Sprintf("(manifest %d)", i), mb)
		if err != nil {
			return nil, nil, err
		}
		blobs[mf.digest] = mf
		if _, err := walk(ctx, stagedSource{s: s, blobs: blobs}, mf.digest, true); err != nil {
			return nil, nil, err
		}
		for _, t := range dm.RepoTags {
			ref, err := NormalizeRef(t)
			if err != nil {
				return nil, nil, fmt.Errorf("manifest.json: %w", err)
			}
			imgs = append(imgs, Image{Ref: ref, Digest: mf.digest})
		}
	}
	slices.SortFunc(imgs, func(a, b Image) int { return strings.Compare(a.Ref, b.Ref) })
	return imgs, blobs, nil
}

// layerType tells a layer's media type from its first bytes.
func layerType(f staged) (string, error) {
	r, err := os.Open(f.path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// importLease bounds how long the content of an import that died keeps
// its lease before containerd's garbage collector may take it.
const importLease = time.Hour

// commit writes an import's verified blobs into containerd under a lease
// (so its garbage collector leaves them alone until a record names them),
// manifests labelled with their children (so it keeps configs and layers
// while a record names the manifest), then containerd's image records,
// then the names.
func (s *Store) commit(ctx context.Context, imgs []Image, src Source, blobs map[digest.Digest]staged) error {
	l, err := s.cs.newLease(ctx, fmt.Sprintf("knode-import-%d", time.Now().UnixNano()), importLease)
	if err != nil {
		return err
	}
	// A lease that cannot be released expires after importLease: the
	// records hold the content by then, so that costs nothing.
	defer func() { _ = l.release(context.WithoutCancel(ctx)) }()
	labels := map[digest.Digest]map[string]string{}
	targets := map[digest.Digest]Descriptor{}
	for _, im := range imgs {
		if _, ok := targets[im.Digest]; ok {
			continue
		}
		t, err := gcLabels(ctx, src, im.Digest, labels)
		if err != nil {
			return err
		}
		targets[im.Digest] = t
	}
	for d, f := range blobs {
		if err := writeStaged(ctx, l, f, labels[d]); err != nil {
			return err
		}
	}
	for _, im := range imgs {
		if err := s.cs.SetRecord(ctx, im.Ref, targets[im.Digest]); err != nil {
			return err
		}
	}
	_, err = s.SetRefs(imgs)
	return err
}

// writeStaged writes one staged file into containerd.
func writeStaged(ctx context.Context, l *lease, f staged, labels map[string]string) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	return l.write(ctx, r, f.digest, f.size, labels)
}
