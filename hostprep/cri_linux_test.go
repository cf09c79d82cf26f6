//go:build linux

package hostprep

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criServer serves the part of the CRI runtime service criPods calls, over
// gRPC on a unix socket, with sandboxes held in memory.
type criServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	mu      sync.Mutex
	ips     map[string][]string // sandbox ID -> addresses ("" : host network)
	stopped []string
}

func (s *criServer) ListPodSandbox(ctx context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for id := range s.ips {
		out = append(out, &runtimeapi.PodSandbox{Id: id, Metadata: &runtimeapi.PodSandboxMetadata{Namespace: "default", Name: id}, State: runtimeapi.PodSandboxState_SANDBOX_READY})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (s *criServer) PodSandboxStatus(ctx context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ips := s.ips[r.PodSandboxId]
	n := &runtimeapi.PodSandboxNetworkStatus{}
	if len(ips) > 0 {
		n.Ip = ips[0]
		for _, ip := range ips[1:] {
			n.AdditionalIps = append(n.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: r.PodSandboxId, Network: n}}, nil
}

func (s *criServer) StopPodSandbox(ctx context.Context, r *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = append(s.stopped, r.PodSandboxId)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *criServer) RemovePodSandbox(ctx context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ips, r.PodSandboxId)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// A moved node's pods in its old subnet are stopped and removed through the
// CRI, whichever of their addresses is there; pods in the new subnet and
// host-network pods stay.
func TestCRIRemoveIn(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &criServer{ips: map[string][]string{
		"old":     {"10.10.9.7"},
		"dual":    {"fd00::7", "10.10.9.8"},
		"new":     {"10.10.2.5"},
		"hostnet": nil,
		"other":   {"192.0.2.4"},
	}}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, srv)
	go g.Serve(l)
	t.Cleanup(g.Stop)

	removed, err := criPods{socket: sock}.RemoveIn(context.Background(), netip.MustParsePrefix("10.10.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{"default/dual", "default/old"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	slices.Sort(srv.stopped)
	if want := []string{"dual", "old"}; !slices.Equal(srv.stopped, want) {
		t.Errorf("stopped %v, want %v", srv.stopped, want)
	}
	if len(srv.ips) != 3 {
		t.Errorf("sandboxes left %v, want new, hostnet and other", srv.ips)
	}
}
