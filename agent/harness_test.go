package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/gossip/gossiptest"
	"knode.dev/knode/pki"
)

// net is the loopback network of a test cluster: it can cut links.
type testNet struct {
	mu  sync.Mutex
	cut map[[2]string]bool // [from, to] addr pairs that drop traffic
}

// blocker answers for the wire whose address self will hold (set once the
// wire is listening, under n.mu: its forwarders may already ask).
func (n *testNet) blocker(self *string) func(string) bool {
	return func(remote string) bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.cut[[2]string{*self, remote}]
	}
}

// partition cuts every link between the two groups of addresses.
func (n *testNet) partition(a, b []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.cut[[2]string{x, y}], n.cut[[2]string{y, x}] = true, true
		}
	}
}

func (n *testNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

// testCluster runs real agents on loopback with fast timers.
type testCluster struct {
	t       testing.TB
	cluster config.Cluster
	token   pki.Token // the worker token
	// masterToken lets a joiner take a free master seat: tc.join uses it,
	// as an operator joining nodes of an HA cluster would.
	masterToken pki.Token
	net         *testNet
	root        string
	timing      gossip.Timing

	mu       sync.Mutex
	agents   map[string]*Agent
	wires    map[string]*gossiptest.Wire
	reserved map[string]*gossiptest.Wire // opened by reserve, not yet started
	first    string
	// options, when set, adjusts each agent's options before it starts.
	options func(name string, o *Options)
	// ips gives a node a loopback address of its own (127.0.0.x); the
	// others share 127.0.0.1.
	ips map[string]string
	// addrs holds every started agent's address, stopped ones' too.
	addrs map[string]string
}

// ip is the loopback address name's agent binds.
func (tc *testCluster) ip(name string) string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if ip, ok := tc.ips[name]; ok {
		return ip
	}
	return "127.0.0.1"
}

func testPlan(masters int) config.Cluster {
	return config.Cluster{Name: "test", PodCIDR: netip.MustParsePrefix("10.10.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.0.0.0/16"),
		NodeCIDRMask: 24, Masters: masters, Network: "auto"}
}

// newTestCluster creates a cluster whose first node is "n00".
func newTestCluster(t testing.TB, c config.Cluster) *testCluster {
	return newTestClusterTiming(t, c, gossip.Fast)
}

func newTestClusterTiming(t testing.TB, c config.Cluster, timing gossip.Timing) *testCluster {
	return newTestClusterWith(t, c, timing, nil)
}

// newTestClusterWith is newTestClusterTiming with options adjusting every
// agent's Options, n00's included.
func newTestClusterWith(t testing.TB, c config.Cluster, timing gossip.Timing, options func(name string, o *Options)) *testCluster {
	root, err := os.MkdirTemp("", "kn")
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, cluster: c, net: &testNet{cut: map[[2]string]bool{}}, root: root, timing: timing,
		agents: map[string]*Agent{}, wires: map[string]*gossiptest.Wire{}, reserved: map[string]*gossiptest.Wire{}, options: options,
		addrs: map[string]string{}}
	t.Cleanup(func() {
		tc.mu.Lock()
		agents := tc.agents
		tc.mu.Unlock()
		for _, a := range agents {
			a.Stop(false)
		}
		os.RemoveAll(root)
	})
	dir := tc.dir("n00")
	gen, err := Create(dir, c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc.token, tc.masterToken, tc.first = gen.Token, gen.MasterToken, "n00"
	if _, err := tc.start("n00", nil, gen, gen.Token, false); err != nil {
		t.Fatal(err)
	}
	return tc
}

func (tc *testCluster) dir(name string) datadir.Dir {
	return datadir.Dir{Root: tc.root + "/" + name}
}

// reserve opens the wire name's agent will use, so that its address can be
// put on one side of a partition before the agent starts.
func (tc *testCluster) reserve(name string) string {
	tc.t.Helper()
	self := new(string)
	ip := tc.ip(name)
	w, err := gossiptest.NewWire(netip.MustParseAddrPort(ip+":0"), tc.net.blocker(self))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.net.mu.Lock()
	*self = fmt.Sprintf("%s:%d", ip, w.Port())
	addr := *self
	tc.net.mu.Unlock()
	tc.mu.Lock()
	tc.reserved[name] = w
	tc.mu.Unlock()
	return addr
}

// start runs the agent of name: it joins through peers (names of running
// agents, or addresses) with tok, or, when
// its data directory is initialised, restarts from what it saved.
func (tc *testCluster) start(name string, peers []string, create *Genesis, tok pki.Token, rejoin bool) (*Agent, error) {
	tc.mu.Lock()
	w, ok := tc.reserved[name]
	delete(tc.reserved, name)
	tc.mu.Unlock()
	if !ok {
		tc.reserve(name)
		tc.mu.Lock()
		w = tc.reserved[name]
		delete(tc.reserved, name)
		tc.mu.Unlock()
	}
	var addrs []string
	for _, p := range peers {
		if !strings.Contains(p, ":") { // a node's name, not an address
			p = tc.addr(p)
		}
		addrs = append(addrs, p)
	}
	var log *slog.Logger
	if os.Getenv("KNODE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var join *pki.Token
	if create == nil && !tc.dir(name).Initialised() {
		join = &tok
	}
	o := Options{Logger: log,
		Dir: tc.dir(name), Token: join, Peers: addrs, Rejoin: rejoin, Timing: tc.timing, Transport: w, Create: create,
		Node: config.Node{Name: name, Bind: netip.MustParseAddrPort(tc.ip(name) + ":0"), DataDir: tc.dir(name).Root},
	}
	if tc.options != nil {
		tc.options(name, &o)
	}
	a, err := Start(context.Background(), o)
	if err != nil {
		w.Shutdown()
		return nil, err
	}
	tc.mu.Lock()
	tc.agents[name], tc.wires[name], tc.addrs[name] = a, w, a.Addr()
	tc.mu.Unlock()
	return a, nil
}

// addr is name's gossip address; a stopped agent's is the one it had (a
// test may kill a node that joiners go through).
func (tc *testCluster) addr(name string) string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if a, ok := tc.agents[name]; ok {
		return a.Addr()
	}
	return tc.addrs[name]
}

// join starts name with the master token (it takes a free seat, else it is
// a worker), through via, and fails the test if it cannot.
func (tc *testCluster) join(name string, via ...string) *Agent {
	tc.t.Helper()
	a, err := tc.start(name, via, nil, tc.masterToken, false)
	if err != nil {
		tc.t.Fatalf("join %s via %v: %v", name, via, err)
	}
	return a
}

// kill stops an agent without leaving, as a crash would.
func (tc *testCluster) kill(name string) {
	tc.mu.Lock()
	a := tc.agents[name]
	delete(tc.agents, name)
	tc.mu.Unlock()
	a.Stop(false)
}

func (tc *testCluster) live() map[string]*Agent {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	out := map[string]*Agent{}
	for k, v := range tc.agents {
		out[k] = v
	}
	return out
}

// view renders one agent's status as comparable text: every member with state,
// roles and subnet (last-seen times left out).
func view(st Status) string {
	var b strings.Builder
	for _, m := range st.Members {
		fmt.Fprintf(&b, "%s %s %v %s %s\n", m.Name, m.State, m.Roles, m.PodCIDR, m.Error)
	}
	return b.String()
}

// waitConverged waits until every live agent reports the same view, every
// live member is alive with a subnet, and no subnet is held twice.
func (tc *testCluster) waitConverged(timeout time.Duration, wantMembers int) string {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if v, ok := tc.converged(wantMembers); ok {
			return v
		} else {
			last = v
		}
		time.Sleep(50 * time.Millisecond)
	}
	var all strings.Builder
	for name, a := range tc.live() {
		dg, n := a.state.Digest()
		fmt.Fprintf(&all, "--- %s (digest %x, %d records, refused %v):\n%s", name, dg, n, a.g.Rejected(), view(a.Status()))
	}
	tc.t.Fatalf("cluster did not converge in %s; last disagreement:\n%s\nevery view:\n%s", timeout, last, all.String())
	return ""
}

func (tc *testCluster) converged(wantMembers int) (string, bool) {
	views := map[string][]string{}
	for name, a := range tc.live() {
		st := a.Status()
		if len(st.Members) != wantMembers {
			return fmt.Sprintf("%s sees %d members, want %d:\n%s", name, len(st.Members), wantMembers, view(st)), false
		}
		seen := map[string]string{}
		for _, m := range st.Members {
			if m.PodCIDR == "" && m.Error == "" && m.State != gossip.StateDead && m.State != gossip.StateLeft {
				return fmt.Sprintf("%s: %s has no subnet yet", name, m.Name), false
			}
			if other, dup := seen[m.PodCIDR]; dup && m.PodCIDR != "" {
				return fmt.Sprintf("%s: %s and %s both hold %s", name, other, m.Name, m.PodCIDR), false
			}
			seen[m.PodCIDR] = m.Name
		}
		v := view(st)
		views[v] = append(views[v], name)
	}
	if len(views) != 1 {
		var b strings.Builder
		for v, names := range views {
			sort.Strings(names)
			fmt.Fprintf(&b, "seen by %v:\n%s\n", names, v)
		}
		return b.String(), false
	}
	for v := range views {
		return v, true
	}
	return "", false
}
