package cri

import (
	"context"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtime is the CRI's own generated service, served by grpc-go as a
// container runtime serves it: the requests it sees are decoded by the real
// protobuf code, so a wrong field number or wire type fails here.
type runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	mu         sync.Mutex
	containers []*runtimeapi.Container
	stopped    map[string]int64
	filters    []*runtimeapi.ContainerFilter
}

func (r *runtime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filters = append(r.filters, req.Filter)
	var out []*runtimeapi.Container
	for _, c := range r.containers {
		if req.Filter.GetState() != nil && c.State != req.Filter.State.State {
			continue
		}
		match := true
		for k, v := range req.Filter.GetLabelSelector() {
			match = match && c.Labels[k] == v
		}
		if match {
			out = append(out, c)
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (r *runtime) StopContainer(_ context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.ContainerId == "gone" {
		return nil, status.Error(codes.NotFound, "container \"gone\": not found")
	}
	r.stopped[req.ContainerId] = req.Timeout
	return &runtimeapi.StopContainerResponse{}, nil
}

func serve(t *testing.T, r *runtime) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, r)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return sock
}

func TestAgainstGRPCServer(t *testing.T) {
	pod := map[string]string{"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.name": "etcd-m0"}
	other := map[string]string{"io.kubernetes.pod.namespace": "kube-system", "io.kubernetes.pod.name": "kube-apiserver-m0"}
	r := &runtime{stopped: map[string]int64{}, containers: []*runtimeapi.Container{
		{Id: "a1", Metadata: &runtimeapi.ContainerMetadata{Name: "etcd", Attempt: 2}, State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Labels: pod, Annotations: map[string]string{"x": "y"}, CreatedAt: 1234567, Image: &runtimeapi.ImageSpec{Image: "knode.local/control-plane"}},
		{Id: "a0", Metadata: &runtimeapi.ContainerMetadata{Name: "etcd", Attempt: 1}, State: runtimeapi.ContainerState_CONTAINER_EXITED, Labels: pod},
		{Id: "b1", Metadata: &runtimeapi.ContainerMetadata{Name: "kube-apiserver"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING, Labels: other},
	}}
	c := New(serve(t, r))
	defer c.Close()
	ctx := context.Background()

	got, err := c.RunningContainers(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (Container{ID: "a1", Name: "etcd"}) {
		t.Fatalf("RunningContainers = %+v, want only the running etcd container a1", got)
	}
	f := r.filters[0]
	if f.State.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || !maps.Equal(f.LabelSelector, pod) || f.Id != "" {
		t.Fatalf("the runtime received filter %+v", f)
	}

	if err := c.StopContainer(ctx, "a1", 10); err != nil {
		t.Fatal(err)
	}
	if r.stopped["a1"] != 10 {
		t.Fatalf("stopped = %v, want a1 with timeout 10", r.stopped)
	}
	err = c.StopContainer(ctx, "gone", 10)
	var e *Error
	if !errors.As(err, &e) || e.Code != int(codes.NotFound) || e.Message != `container "gone": not found` {
		t.Fatalf("stopping a missing container: %v, want NotFound with its message", err)
	}
	if got, err := c.RunningContainers(ctx, map[string]string{"io.kubernetes.pod.name": "none"}); err != nil || len(got) != 0 {
		t.Fatalf("no match: %+v, %v", got, err)
	}
}

func TestNoRuntime(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "missing.sock"))
	if _, err := c.RunningContainers(context.Background(), nil); err == nil {
		t.Fatal("no error without a runtime")
	}
}

func TestMalformedAnswers(t *testing.T) {
	for _, b := range [][]byte{
		{0x0a, 0x05, 0x0a},       // a container longer than the message
		{0x0a, 0x02, 0x12, 0x00}, // a container without an id
		{0x08},                   // a varint cut short
	} {
		err := fields(b, func(num protowire.Number, v []byte) error {
			_, err := decodeContainer(v)
			return err
		})
		if err == nil {
			t.Errorf("% x decoded without error", b)
		}
	}
}
