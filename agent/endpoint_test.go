package agent

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
)

func TestAPIServersAreTheSeatedMasters(t *testing.T) {
	as := func(name, addr string, seat int) gossip.Assignment {
		return gossip.Assignment{Node: name, Addr: netip.MustParseAddr(addr), Seat: seat, Version: uint64(seat + 10),
			PodCIDR: netip.MustParsePrefix("10.10.0.0/24")}
	}
	snap := gossip.Snapshot{
		Cluster: &gossip.ClusterInfo{Cluster: config.Cluster{Masters: 3}},
		Assignments: map[string]gossip.Assignment{
			"m2": as("m2", "10.0.0.3", 2), "m0": as("m0", "10.0.0.1", 0), "m1": as("m1", "10.0.0.2", 1),
			"w": as("w", "10.0.0.9", -1),
		},
		Nodes: map[string]gossip.NodeInfo{"m1": {Name: "m1", Removed: true}},
	}
	got := apiServers(snap)
	if want := []string{"10.0.0.1:6443", "10.0.0.3:6443"}; !slices.Equal(got, want) {
		t.Fatalf("apiServers = %v, want %v (seat order, the removed master and the worker left out)", got, want)
	}
	m2 := snap.Assignments["m2"]
	m2.Released = true
	snap.Assignments["m2"] = m2
	if got := apiServers(snap); !slices.Equal(got, []string{"10.0.0.1:6443"}) {
		t.Fatalf("a released seat is still a backend: %v", got)
	}
}

// An agent with an endpoint serves it from Start, with its own apiserver as
// the backend, and closes it on Stop.
func TestAgentServesEndpoint(t *testing.T) {
	dir := datadir.Dir{Root: t.TempDir()}
	gen, err := Create(dir, testPlan(1), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Start(context.Background(), Options{Dir: dir, Create: gen, Timing: gossip.Fast,
		Node:        config.Node{Name: "n00", Bind: netip.MustParseAddrPort("127.0.0.1:0"), DataDir: dir.Root},
		APIEndpoint: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.WaitAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Status().APIEndpoint) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := a.Status().APIEndpoint
	if len(st) != 1 || st[0].Addr != "127.0.0.1:6443" {
		t.Fatalf("endpoint backends %+v, want this master's apiserver 127.0.0.1:6443", st)
	}
	addr := a.endpoint.Addr().String()
	a.Stop(false)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the endpoint %s still accepts after Stop", addr)
	}
}
