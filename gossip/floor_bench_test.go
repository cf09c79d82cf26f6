package gossip

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"knode.dev/knode/gossip/gossiptest"
)

// BenchmarkMemberlistFloor forms clusters of bare memberlist instances, with
// the configuration knode's LAN profile uses (encryption on, compression
// off) and no delegate: one seed, every other node
// joining it at the same instant. It measures the floor under knode's own
// formation figure (BenchmarkFormation in agent): the seconds until every
// member sees every other alive, and the CPU seconds the process used for
// it. KNODE_BENCH_NODES (comma-separated) overrides the sizes.
func BenchmarkMemberlistFloor(b *testing.B) {
	sizes := gossiptest.BenchSizes(b)
	key := make([]byte, 32)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var walls, cores, failed []float64
			for range b.N {
				before := gossiptest.MemberlistCounts()
				wall, cpu := formBare(b, n, key)
				fd := gossiptest.Delta(before, gossiptest.MemberlistCounts())
				b.Logf("%d bare nodes: all alive everywhere after %.2fs, %.2f cores; %d failed probes; %d suspect, %d dead and %d alive messages handled",
					n, wall.Seconds(), cpu.Seconds()/wall.Seconds(), fd["degraded.probe"], fd["msg.suspect"], fd["msg.dead"], fd["msg.alive"])
				walls, cores = append(walls, wall.Seconds()), append(cores, cpu.Seconds()/wall.Seconds())
				failed = append(failed, float64(fd["degraded.probe"]))
			}
			b.ReportMetric(gossiptest.Median(walls), "s/all-alive")
			b.ReportMetric(gossiptest.Median(cores), "cores-forming")
			b.ReportMetric(gossiptest.Median(failed), "failed-probes-forming")
		})
	}
}

func formBare(b *testing.B, n int, key []byte) (wall, cpu time.Duration) {
	nodes := make([]*memberlist.Memberlist, n)
	defer func() {
		for _, m := range nodes {
			if m != nil {
				m.Shutdown()
			}
		}
	}()
	create := func(i int) (*memberlist.Memberlist, error) {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			return nil, err
		}
		mc := memberlist.DefaultLANConfig()
		mc.EnableCompression = false
		mc.DeadNodeReclaimTime = time.Millisecond
		mc.Name = fmt.Sprintf("n%03d", i)
		mc.BindAddr, mc.BindPort = "127.0.0.1", 0
		mc.Keyring = kr
		mc.LogOutput = io.Discard
		return memberlist.Create(mc)
	}
	seed, err := create(0)
	if err != nil {
		b.Fatal(err)
	}
	nodes[0] = seed
	seedAddr := seed.LocalNode().Address()
	start, cpu0 := time.Now(), gossiptest.CPUTime()
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := create(i)
			if err != nil {
				b.Error(err)
				return
			}
			nodes[i] = m
			if _, err := m.Join([]string{seedAddr}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	deadline := start.Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		all := true
		for _, m := range nodes {
			if m == nil || m.NumMembers() != n {
				all = false
				break
			}
		}
		if all {
			return time.Since(start), gossiptest.CPUTime() - cpu0
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%d bare memberlist nodes did not all see each other in 3 minutes", n)
	return 0, 0
}
