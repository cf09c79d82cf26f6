package registrytest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Containerd is an in-memory containerd serving its content, images and
// leases services on a unix socket, with containerd's rules that knode
// relies on: a namespace is required; a write commits only when its size
// and digest match, and an existing digest is AlreadyExists; and a
// synchronous image delete runs a garbage collection that keeps only what
// an image record or a lease reaches, following the
// containerd.io/gc.ref.content.* labels, as containerd's collector does.
type Containerd struct {
	// Socket is the path to dial.
	Socket string

	mu     sync.Mutex
	blobs  map[string][]byte
	labels map[string]map[string]string
	images map[string]*imagesapi.Image
	leases map[string]map[string]bool // lease -> digests
	writes map[string][]byte          // ref -> bytes so far
	reads  int
}

// StartContainerd serves a fake containerd until the test ends.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctrd") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Socket: filepath.Join(dir, "c.sock"), blobs: map[string][]byte{},
		labels: map[string]map[string]string{}, images: map[string]*imagesapi.Image{},
		leases: map[string]map[string]bool{}, writes: map[string][]byte{}}
	ln, err := net.Listen("unix", c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(needNamespace), grpc.StreamInterceptor(needNamespaceStream))
	contentapi.RegisterContentServer(srv, contentService{c: c})
	imagesapi.RegisterImagesServer(srv, imagesService{c: c})
	leasesapi.RegisterLeasesServer(srv, leasesService{c: c})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Stop(); os.RemoveAll(dir) })
	return c
}

func namespaceOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("containerd-namespace"); len(v) == 1 {
		return v[0]
	}
	return ""
}

func needNamespace(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if namespaceOf(ctx) == "" {
		return nil, status.Error(codes.FailedPrecondition, "namespace is required")
	}
	return h(ctx, req)
}

func needNamespaceStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if namespaceOf(ss.Context()) == "" {
		return status.Error(codes.FailedPrecondition, "namespace is required")
	}
	return h(srv, ss)
}

// Put adds content as a pull would (no labels).
func (c *Containerd) Put(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	c.mu.Lock()
	c.blobs[d.String()] = b
	c.mu.Unlock()
	return d
}

// Lose removes the content d as a disk failure or another client would,
// records and labels untouched.
func (c *Containerd) Lose(d digest.Digest) {
	c.mu.Lock()
	delete(c.blobs, d.String())
	c.mu.Unlock()
}

// Damage replaces the bytes of d on "disk" (the digest stays).
func (c *Containerd) Damage(d digest.Digest, b []byte) {
	c.mu.Lock()
	c.blobs[d.String()] = b
	c.mu.Unlock()
}

// Has reports whether the content d is committed.
func (c *Containerd) Has(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.blobs[d.String()]
	return ok
}

// Blobs is the number of committed blobs.
func (c *Containerd) Blobs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.blobs)
}

// Labels are the labels of the content d.
func (c *Containerd) Labels(d digest.Digest) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.labels[d.String()]
}

// SetImage creates (or moves) the image record name, as a pull does.
func (c *Containerd) SetImage(name string, d digest.Digest, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images[name] = &imagesapi.Image{Name: name, Target: &types.Descriptor{
		MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: d.String(), Size: size}}
}

// Image returns the target digest of the image record name.
func (c *Containerd) Image(name string) (digest.Digest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im, ok := c.images[name]
	if !ok {
		return "", false
	}
	return digest.Digest(im.GetTarget().GetDigest()), true
}

// Leases is the number of leases held.
func (c *Containerd) Leases() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.leases)
}

// Reads counts content Read calls served.
func (c *Containerd) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// GC removes the content no image record or lease reaches.
func (c *Containerd) GC() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gc()
}

func (c *Containerd) gc() {
	keep := map[string]bool{}
	var mark func(d string)
	mark = func(d string) {
		if keep[d] {
			return
		}
		keep[d] = true
		for k, v := range c.labels[d] {
			if strings.HasPrefix(k, "containerd.io/gc.ref.content.") {
				mark(v)
			}
		}
	}
	for _, im := range c.images {
		mark(im.GetTarget().GetDigest())
	}
	for _, ds := range c.leases {
		for d := range ds {
			mark(d)
		}
	}
	for d := range c.blobs {
		if !keep[d] {
			delete(c.blobs, d)
			delete(c.labels, d)
		}
	}
}

// lease records d under the request's lease, if it names one.
func (c *Containerd) lease(ctx context.Context, d string) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("containerd-lease"); len(v) == 1 && c.leases[v[0]] != nil {
		c.leases[v[0]][d] = true
	}
}

type contentService struct {
	contentapi.UnimplementedContentServer
	c *Containerd
}

func (s contentService) Info(_ context.Context, r *contentapi.InfoRequest) (*contentapi.InfoResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	b, ok := s.c.blobs[r.GetDigest()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "content digest %s: not found", r.GetDigest())
	}
	return &contentapi.InfoResponse{Info: &contentapi.Info{Digest: r.GetDigest(), Size: int64(len(b)),
		Labels: s.c.labels[r.GetDigest()]}}, nil
}

func (s contentService) List(_ *contentapi.ListContentRequest, st contentapi.Content_ListServer) error {
	s.c.mu.Lock()
	var infos []*contentapi.Info
	for d, b := range s.c.blobs {
		infos = append(infos, &contentapi.Info{Digest: d, Size: int64(len(b))})
	}
	s.c.mu.Unlock()
	return st.Send(&contentapi.ListContentResponse{Info: infos})
}

func (s contentService) Read(r *contentapi.ReadContentRequest, st contentapi.Content_ReadServer) error {
	s.c.mu.Lock()
	b, ok := s.c.blobs[r.GetDigest()]
	s.c.reads++
	s.c.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "content digest %s: not found", r.GetDigest())
	}
	b = b[min(max(r.GetOffset(), 0), int64(len(b))):]
	if r.GetSize() > 0 {
		b = b[:min(r.GetSize(), int64(len(b)))]
	}
	for off := 0; off < len(b); off += 1 << 20 {
		chunk := b[off:min(off+1<<20, len(b))]
		if err := st.Send(&contentapi.ReadContentResponse{Offset: r.GetOffset() + int64(off), Data: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// Update sets the labels its mask names (labels.<key>), as containerd does.
func (s contentService) Update(_ context.Context, r *contentapi.UpdateRequest) (*contentapi.UpdateResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	d := r.GetInfo().GetDigest()
	b, ok := s.c.blobs[d]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "content digest %s: not found", d)
	}
	for _, p := range r.GetUpdateMask().GetPaths() {
		k, ok := strings.CutPrefix(p, "labels.")
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "cannot update %q", p)
		}
		if s.c.labels[d] == nil {
			s.c.labels[d] = map[string]string{}
		}
		if v, ok := r.GetInfo().GetLabels()[k]; ok {
			s.c.labels[d][k] = v
		} else {
			delete(s.c.labels[d], k)
		}
	}
	return &contentapi.UpdateResponse{Info: &contentapi.Info{Digest: d, Size: int64(len(b)), Labels: s.c.labels[d]}}, nil
}

func (s contentService) Delete(_ context.Context, r *contentapi.DeleteContentRequest) (*emptypb.Empty, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	delete(s.c.blobs, r.GetDigest())
	return &emptypb.Empty{}, nil
}

// Write follows containerd's content service: a ref accumulates bytes at
// offsets; a commit checks the total and the expected digest.
func (s contentService) Write(st contentapi.Content_WriteServer) error {
	var expected string
	var total int64
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetExpected() != "" {
			expected = req.GetExpected()
		}
		if req.GetTotal() > 0 {
			total = req.GetTotal()
		}
		s.c.mu.Lock()
		if _, ok := s.c.blobs[expected]; ok && expected != "" {
			s.c.lease(st.Context(), expected)
			s.c.mu.Unlock()
			return status.Errorf(codes.AlreadyExists, "content %s: already exists", expected)
		}
		buf := s.c.writes[req.GetRef()]
		if req.GetOffset() < int64(len(buf)) {
			buf = buf[:req.GetOffset()]
		} else if req.GetOffset() > int64(len(buf)) {
			s.c.mu.Unlock()
			return status.Errorf(codes.OutOfRange, "write at %d beyond %d", req.GetOffset(), len(buf))
		}
		buf = append(buf, req.GetData()...)
		s.c.writes[req.GetRef()] = buf
		resp := &contentapi.WriteContentResponse{Action: req.GetAction(), Offset: int64(len(buf)), Total: total}
		if req.GetAction() == contentapi.WriteAction_COMMIT {
			delete(s.c.writes, req.GetRef())
			got := digest.FromBytes(buf)
			switch {
			case total > 0 && int64(len(buf)) != total:
				s.c.mu.Unlock()
				return status.Errorf(codes.FailedPrecondition, "unexpected commit size %d, expected %d", len(buf), total)
			case expected != "" && got.String() != expected:
				s.c.mu.Unlock()
				return status.Errorf(codes.FailedPrecondition, "unexpected commit digest %s, expected %s", got, expected)
			}
			s.c.blobs[got.String()] = buf
			if len(req.GetLabels()) > 0 {
				s.c.labels[got.String()] = req.GetLabels()
			}
			s.c.lease(st.Context(), got.String())
			resp.Digest = got.String()
		}
		s.c.mu.Unlock()
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

type imagesService struct {
	imagesapi.UnimplementedImagesServer
	c *Containerd
}

func (s imagesService) Get(_ context.Context, r *imagesapi.GetImageRequest) (*imagesapi.GetImageResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	im, ok := s.c.images[r.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "image %q: not found", r.GetName())
	}
	return &imagesapi.GetImageResponse{Image: im}, nil
}

func (s imagesService) List(context.Context, *imagesapi.ListImagesRequest) (*imagesapi.ListImagesResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	var out []*imagesapi.Image
	for _, im := range s.c.images {
		out = append(out, im)
	}
	return &imagesapi.ListImagesResponse{Images: out}, nil
}

func (s imagesService) Create(_ context.Context, r *imagesapi.CreateImageRequest) (*imagesapi.CreateImageResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, ok := s.c.images[r.GetImage().GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "image %q: already exists", r.GetImage().GetName())
	}
	s.c.images[r.GetImage().GetName()] = r.GetImage()
	return &imagesapi.CreateImageResponse{Image: r.GetImage()}, nil
}

func (s imagesService) Update(_ context.Context, r *imagesapi.UpdateImageRequest) (*imagesapi.UpdateImageResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	old, ok := s.c.images[r.GetImage().GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "image %q: not found", r.GetImage().GetName())
	}
	im := r.GetImage()
	if paths := r.GetUpdateMask().GetPaths(); len(paths) > 0 {
		if len(paths) != 1 || paths[0] != "target" {
			return nil, status.Errorf(codes.Unimplemented, "the fake updates the target only, not %v", paths)
		}
		im = &imagesapi.Image{Name: old.GetName(), Labels: old.GetLabels(), Target: r.GetImage().GetTarget()}
	}
	s.c.images[im.GetName()] = im
	return &imagesapi.UpdateImageResponse{Image: im}, nil
}

func (s imagesService) Delete(_ context.Context, r *imagesapi.DeleteImageRequest) (*emptypb.Empty, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, ok := s.c.images[r.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "image %q: not found", r.GetName())
	}
	delete(s.c.images, r.GetName())
	if r.GetSync() {
		s.c.gc()
	}
	return &emptypb.Empty{}, nil
}

type leasesService struct {
	leasesapi.UnimplementedLeasesServer
	c *Containerd
}

func (s leasesService) Create(_ context.Context, r *leasesapi.CreateRequest) (*leasesapi.CreateResponse, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, ok := s.c.leases[r.GetID()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "lease %q: already exists", r.GetID())
	}
	s.c.leases[r.GetID()] = map[string]bool{}
	return &leasesapi.CreateResponse{Lease: &leasesapi.Lease{ID: r.GetID(), Labels: r.GetLabels()}}, nil
}

func (s leasesService) Delete(_ context.Context, r *leasesapi.DeleteRequest) (*emptypb.Empty, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if _, ok := s.c.leases[r.GetID()]; !ok {
		return nil, status.Errorf(codes.NotFound, "lease %q: not found", r.GetID())
	}
	delete(s.c.leases, r.GetID())
	return &emptypb.Empty{}, nil
}
