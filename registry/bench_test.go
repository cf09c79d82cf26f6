package registry

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"knode.dev/knode/pki"
)

// BenchmarkMirrorPull50MB pulls a 50 MiB layer of incompressible bytes
// through a node's mirror from a peer over mutual TLS on loopback (read
// from the holder's containerd over gRPC, hashed on both sides): go test -bench
// MirrorPull -count 5 ./registry; b.SetBytes makes it report MB/s.
func BenchmarkMirrorPull50MB(b *testing.B) {
	ca, _ := pki.NewCA("bench", time.Now())
	data := make([]byte, 50<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	im := newTestImage(b, "app:v1", string(data))
	holder := netip.MustParseAddr("127.0.0.20")
	port := freePort(b)
	servePeer(b, holder, port, nodeTLS(b, ca, "a", holder), PeerHandler(storeWith(b, im), members("b"), quiet()))
	client := nodeTLS(b, ca, "b", netip.MustParseAddr("127.0.0.21")).Client()
	peers := testPeers{holders: map[digest.Digest][]Peer{im.layers[0]: {{"a", holder}}}}
	size := int64(len(im.blobs[im.layers[0]]))
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		st, _ := newStore(b)
		local := httptest.NewServer(Handler(NewMirror(st, peers, client, port, quiet()), quiet()))
		b.StartTimer()
		res, err := http.Get(local.URL + "/v2/library/app/blobs/" + im.layers[0].String())
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if n != size {
			b.Fatalf("%d of %d bytes", n, size)
		}
		b.StopTimer()
		local.Close()
		b.StartTimer()
	}
}

// BenchmarkHeld is one recomputation of the announcement over 20 images
// in a fake containerd over gRPC: warm, as the agent's loop runs it every
// 2 s (manifests cached), and cold (the cache emptied first, as every call
// was before it): go test -bench Held -count 5 ./registry.
func BenchmarkHeld(b *testing.B) {
	var ims []testImage
	for i := range 20 {
		ims = append(ims, newTestImage(b, fmt.Sprintf("app%d:v1", i), fmt.Sprint("layer a", i), fmt.Sprint("layer b", i)))
	}
	s := storeWith(b, ims...)
	ctx := context.Background()
	for _, run := range []struct {
		name string
		cold bool
	}{{"warm", false}, {"cold", true}} {
		b.Run(run.name, func(b *testing.B) {
			for range b.N {
				if run.cold {
					s.manifests.keep(nil)
				}
				if _, names, err := s.Held(ctx); err != nil || len(names) != len(ims) {
					b.Fatalf("%d names, %v", len(names), err)
				}
			}
		})
	}
}
