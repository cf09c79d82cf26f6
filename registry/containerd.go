package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Containerd is containerd's content store and image records in one
// namespace, through containerd's own gRPC services (content, images,
// leases). knode never reads containerd's directories: containerd verifies
// what is committed, and its garbage collector owns what is deleted.
type Containerd struct {
	conn    *grpc.ClientConn
	content contentapi.ContentClient
	images  imagesapi.ImagesClient
	leases  leasesapi.LeasesClient
	ns      string
}

// CRINamespace is the namespace the kubelet's images live in.
const CRINamespace = "k8s.io"

// Metadata keys containerd reads from a request (its namespaces and leases
// packages).
const (
	nsHeader    = "containerd-namespace"
	leaseHeader = "containerd-lease"
)

// Labels containerd's garbage collector reads: an expiring lease, and a
// content blob's references to its children (a manifest keeps its config
// and layers alive, an index its manifests).
const (
	labelExpire   = "containerd.io/gc.expire"
	labelRefChild = "containerd.io/gc.ref.content."
)

// readWindow bounds what containerd may send ahead of a slow reader, per
// stream (gRPC's flow control; a fixed window also stops its growth to
// megabytes per stream, which the agent held while serving peers).
const readWindow = 256 << 10

// writeChunk is the size of one write message (gRPC's default limit is 4 MiB).
const writeChunk = 1 << 20

// DialContainerd connects to containerd's socket (nothing is sent until
// the first call) for the namespace ns.
func DialContainerd(socket, ns string) (*Containerd, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		grpc.WithInitialWindowSize(readWindow), grpc.WithInitialConnWindowSize(4*readWindow))
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", socket, err)
	}
	return &Containerd{conn: conn, content: contentapi.NewContentClient(conn),
		images: imagesapi.NewImagesClient(conn), leases: leasesapi.NewLeasesClient(conn), ns: ns}, nil
}

// Close closes the connection.
func (c *Containerd) Close() error { return c.conn.Close() }

// with adds the namespace to a call's metadata.
func (c *Containerd) with(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, nsHeader, c.ns)
}

// notFound turns containerd's NotFound into ErrNotFound, naming what.
func notFound(what string, err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: containerd: %w", what, err)
}

// Size returns the size of the committed content d.
func (c *Containerd) Size(ctx context.Context, d digest.Digest) (int64, error) {
	res, err := c.content.Info(c.with(ctx), &contentapi.InfoRequest{Digest: d.String()})
	if err != nil {
		return 0, notFound("blob "+d.String(), err)
	}
	return res.GetInfo().GetSize(), nil
}

// Open streams the committed content d from containerd, in reads of
// readChunk bytes (each a Read call of its own: containerd answers one in
// 1 MiB messages, and a peer transfer would hold a few of them per stream).
func (c *Containerd) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	size, err := c.Size(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithCancel(c.with(ctx))
	return &readStream{c: c, ctx: ctx, cancel: cancel, d: d, size: size}, size, nil
}

// readChunk is the size of one content Read call.
const readChunk = 256 << 10

// readStream is content Read calls as an io.ReadCloser.
type readStream struct {
	c      *Containerd
	ctx    context.Context
	cancel context.CancelFunc
	d      digest.Digest
	size   int64
	off    int64
	// callStart is off when the current Read call began: a call that
	// ends without a byte is a blob shorter than containerd said.
	callStart int64
	st        contentapi.Content_ReadClient
	buf       []byte
}

func (r *readStream) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.st == nil {
			if r.off >= r.size {
				return 0, io.EOF
			}
			st, err := r.c.content.Read(r.ctx, &contentapi.ReadContentRequest{Digest: r.d.String(), Offset: r.off,
				Size: min(readChunk, r.size-r.off)})
			if err != nil {
				return 0, notFound("read blob "+r.d.String(), err)
			}
			r.st, r.callStart = st, r.off
		}
		m, err := r.st.Recv()
		if errors.Is(err, io.EOF) {
			r.st = nil
			if r.off == r.callStart {
				return 0, fmt.Errorf("read blob %s: %w at %d of %d bytes", r.d, io.ErrUnexpectedEOF, r.off, r.size)
			}
			continue
		}
		if err != nil {
			return 0, notFound("read blob "+r.d.String(), err)
		}
		r.buf = m.GetData()
		r.off += int64(len(r.buf))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *readStream) Close() error { r.cancel(); return nil }

// Blobs lists the digests of all committed content.
func (c *Containerd) Blobs(ctx context.Context) (map[digest.Digest]int64, error) {
	st, err := c.content.List(c.with(ctx), &contentapi.ListContentRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd content: %w", err)
	}
	out := map[digest.Digest]int64{}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list containerd content: %w", err)
		}
		for _, i := range m.GetInfo() {
			if d, err := digest.Parse(i.GetDigest()); err == nil {
				out[d] = i.GetSize()
			}
		}
	}
}

// Record is one of containerd's image records: a name and its target.
type Record struct {
	Name   string
	Target Descriptor
}

// Descriptor is what a record points at.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// Records lists containerd's image records (pulled or imported); names
// whose target is not a valid digest are skipped.
func (c *Containerd) Records(ctx context.Context) ([]Record, error) {
	res, err := c.images.List(c.with(ctx), &imagesapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd images: %w", err)
	}
	var out []Record
	for _, im := range res.GetImages() {
		t := im.GetTarget()
		d, err := digest.Parse(t.GetDigest())
		if err != nil {
			continue
		}
		out = append(out, Record{Name: im.GetName(), Target: Descriptor{MediaType: t.GetMediaType(), Digest: d, Size: t.GetSize()}})
	}
	return out, nil
}

// Record returns the image record name.
func (c *Containerd) Record(ctx context.Context, name string) (Record, error) {
	res, err := c.images.Get(c.with(ctx), &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return Record{}, notFound("image "+name, err)
	}
	t := res.GetImage().GetTarget()
	d, err := digest.Parse(t.GetDigest())
	if err != nil {
		return Record{}, fmt.Errorf("image %s: containerd's target %q: %w", name, t.GetDigest(), err)
	}
	return Record{Name: name, Target: Descriptor{MediaType: t.GetMediaType(), Digest: d, Size: t.GetSize()}}, nil
}

// SetRecord points the image record name at target, creating it if needed.
func (c *Containerd) SetRecord(ctx context.Context, name string, target Descriptor) error {
	im := &imagesapi.Image{Name: name, Target: &types.Descriptor{MediaType: target.MediaType,
		Digest: target.Digest.String(), Size: target.Size}}
	_, err := c.images.Create(c.with(ctx), &imagesapi.CreateImageRequest{Image: im})
	if status.Code(err) == codes.AlreadyExists {
		// The target only: the labels are the CRI's (managed, pinned).
		_, err = c.images.Update(c.with(ctx), &imagesapi.UpdateImageRequest{Image: im,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target"}}})
	}
	if err != nil {
		return fmt.Errorf("containerd image %s -> %s: %w", name, target.Digest, err)
	}
	return nil
}

// DeleteRecord removes the image record name and lets containerd's garbage
// collector remove what nothing references any more before it returns.
func (c *Containerd) DeleteRecord(ctx context.Context, name string) error {
	_, err := c.images.Delete(c.with(ctx), &imagesapi.DeleteImageRequest{Name: name, Sync: true})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("delete containerd image %s: %w", name, err)
	}
	return nil
}

// lease is containerd's protection of content being written: what a lease
// holds is not garbage-collected until it is deleted (or expires, if its
// holder died).
type lease struct {
	c  *Containerd
	id string
}

// newLease takes a lease that expires after ttl.
func (c *Containerd) newLease(ctx context.Context, id string, ttl time.Duration) (*lease, error) {
	_, err := c.leases.Create(c.with(ctx), &leasesapi.CreateRequest{ID: id,
		Labels: map[string]string{labelExpire: time.Now().Add(ttl).UTC().Format(time.RFC3339)}})
	if err != nil {
		return nil, fmt.Errorf("containerd lease %s: %w", id, err)
	}
	return &lease{c: c, id: id}, nil
}

// ctx is a call context under the lease.
func (l *lease) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(l.c.with(ctx), leaseHeader, l.id)
}

// release deletes the lease: from then on only image records keep its content.
func (l *lease) release(ctx context.Context) error {
	if _, err := l.c.leases.Delete(l.c.with(ctx), &leasesapi.DeleteRequest{ID: l.id}); err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("release containerd lease %s: %w", l.id, err)
	}
	return nil
}

// write commits size bytes from r as the content d under the lease, with
// labels; containerd checks the size and digest before it commits. Content
// already committed is not sent again, only labelled.
func (l *lease) write(ctx context.Context, r io.Reader, d digest.Digest, size int64, labels map[string]string) error {
	return l.labelExisting(ctx, d, labels, l.send(ctx, r, d, size, labels))
}

// send is one write stream of the content d.
func (l *lease) send(ctx context.Context, r io.Reader, d digest.Digest, size int64, labels map[string]string) error {
	ctx, cancel := context.WithCancel(l.ctx(ctx))
	defer cancel()
	st, err := l.c.content.Write(ctx)
	if err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	ref := "knode-" + d.Encoded()
	// Start over: a write that died left its ref with some bytes in it.
	if err := st.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Ref: ref,
		Total: size, Expected: d.String(), Offset: 0}); err != nil {
		return writeErr(d, st, err)
	}
	if _, err := st.Recv(); err != nil {
		return writeErr(d, nil, err)
	}
	buf := make([]byte, writeChunk)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := st.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_WRITE, Ref: ref,
				Offset: off, Data: buf[:n]}); err != nil {
				return writeErr(d, st, err)
			}
			if _, err := st.Recv(); err != nil {
				return writeErr(d, nil, err)
			}
			off += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("write blob %s: %w", d, rerr)
		}
	}
	if err := st.Send(&contentapi.WriteContentRequest{Action: contentapi.WriteAction_COMMIT, Ref: ref,
		Total: size, Expected: d.String(), Offset: off, Labels: labels}); err != nil {
		return writeErr(d, st, err)
	}
	if _, err := st.Recv(); err != nil {
		return writeErr(d, nil, err)
	}
	return st.CloseSend()
}

// errExists is a write of content containerd holds already.
var errExists = errors.New("already committed")

// writeErr is a failed write: the stream's own status when it has one.
func writeErr(d digest.Digest, st contentapi.Content_WriteClient, err error) error {
	if st != nil && errors.Is(err, io.EOF) {
		_, err = st.Recv()
	}
	if status.Code(err) == codes.AlreadyExists {
		return errExists // committed before, by an earlier import or a pull
	}
	return fmt.Errorf("write blob %s to containerd: %w", d, err)
}

// labelExisting gives content containerd held already the labels the
// import wanted on it (a manifest some other writer left without its
// children's references would let the collector take its layers); any
// other error is returned as it is.
func (l *lease) labelExisting(ctx context.Context, d digest.Digest, labels map[string]string, err error) error {
	if !errors.Is(err, errExists) {
		return err
	}
	if len(labels) == 0 {
		return nil
	}
	var paths []string
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err = l.c.content.Update(l.c.with(ctx), &contentapi.UpdateRequest{Info: &contentapi.Info{Digest: d.String(), Labels: labels},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
	if err != nil {
		return fmt.Errorf("label blob %s in containerd: %w", d, err)
	}
	return nil
}
