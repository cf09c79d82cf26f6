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
	"time"

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

	containers []*runtimeapi.Container
	stopDelay  time.Duration
	events     []string // "begin ID", "end ID" of each StopContainer
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

// ListContainers filters the server's containers as containerd does: by
// state and by every label of the selector.
func (s *criServer) ListContainers(ctx context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range s.containers {
		if st := r.GetFilter().GetState(); st != nil && st.State != c.State {
			continue
		}
		match := true
		for k, v := range r.GetFilter().GetLabelSelector() {
			match = match && c.Labels[k] == v
		}
		if match {
			out = append(out, c)
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// StopContainer takes stopDelay, as a container's exit would, and logs when
// each stop began and ended.
func (s *criServer) StopContainer(ctx context.Context, r *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	s.mu.Lock()
	s.events = append(s.events, "begin "+r.ContainerId)
	s.mu.Unlock()
	time.Sleep(s.stopDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, "end "+r.ContainerId)
	for _, c := range s.containers {
		if c.Id == r.ContainerId {
			c.State = runtimeapi.ContainerState_CONTAINER_EXITED
		}
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// serveCRI serves srv on a unix socket for the test's duration.
func serveCRI(t *testing.T, srv *criServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, srv)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return sock
}

// At shutdown the scheduler and controller-manager are stopped first, then
// the apiserver once both have exited; etcd, exited containers and a user's
// container of the same name in another namespace are left alone.
func TestCRIStopControlPlane(t *testing.T) {
	ctr := func(id, ns, name string, st runtimeapi.ContainerState) *runtimeapi.Container {
		return &runtimeapi.Container{Id: id, State: st, Labels: map[string]string{
			"io.kubernetes.pod.namespace": ns, "io.kubernetes.container.name": name}}
	}
	run, exited := runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED
	srv := &criServer{stopDelay: 30 * time.Millisecond, containers: []*runtimeapi.Container{
		ctr("apiserver", "kube-system", "kube-apiserver", run),
		ctr("old-apiserver", "kube-system", "kube-apiserver", exited),
		ctr("cm", "kube-system", "kube-controller-manager", run),
		ctr("sched", "kube-system", "kube-scheduler", run),
		ctr("etcd", "kube-system", "etcd", run),
		ctr("impostor", "default", "kube-apiserver", run),
	}}
	n, err := criPods{socket: serveCRI(t, srv)}.stopControlPlane(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("stopped %d, %v; want 3", n, err)
	}
	ev := srv.events
	if len(ev) != 6 || !slices.Equal(ev[4:], []string{"begin apiserver", "end apiserver"}) {
		t.Fatalf("stops %v: want the scheduler's and controller-manager's, then the apiserver's", ev)
	}
	first := slices.Clone(ev[:4])
	slices.Sort(first)
	if want := []string{"begin cm", "begin sched", "end cm", "end sched"}; !slices.Equal(first, want) {
		t.Errorf("first wave %v, want %v", ev[:4], want)
	}

	// On a worker (no control plane) nothing is stopped.
	worker := &criServer{containers: []*runtimeapi.Container{ctr("proxy", "kube-system", "coredns", run)}}
	if n, err := (criPods{socket: serveCRI(t, worker)}).stopControlPlane(context.Background()); err != nil || n != 0 || len(worker.events) != 0 {
		t.Errorf("worker: stopped %d %v, %v", n, worker.events, err)
	}
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
