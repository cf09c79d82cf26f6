package agent

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/gossip"
)

// BenchmarkFormation forms clusters of real agents on loopback (memberlist's
// LAN timers, encryption on): one init, then every other node joins at the
// same instant through a random earlier node. It reports the median time until
// every member sees every other alive with a settled, distinct subnet, and the
// gossip bytes each node sends per second once the cluster is at rest.
func BenchmarkFormation(b *testing.B) {
	for _, n := range []int{10, 50, 200} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var forms []time.Duration
			var rest, syncs []float64
			for range b.N {
				d, bps, sps := formCluster(b, n)
				forms = append(forms, d)
				rest = append(rest, bps)
				syncs = append(syncs, sps)
			}
			b.ReportMetric(median(forms).Seconds(), "s/converged")
			b.ReportMetric(medianF(rest), "B/node/s-at-rest")
			b.ReportMetric(medianF(syncs), "extra-syncs/node/min-at-rest")
		})
	}
}

func formCluster(b *testing.B, n int) (time.Duration, float64, float64) {
	plan := testPlan(3)
	tc := newTestClusterTiming(b, plan, gossip.LAN)
	seeds := []string{"n00"}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tc.start(fmt.Sprintf("n%02d", i), []string{seeds[0]}, nil, tc.token, false); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	tc.waitConverged(120*time.Second, n)
	formed := time.Since(start)
	time.Sleep(2 * time.Second) // let the last broadcasts drain
	sent0, syncs0 := tc.totalSent(), tc.extraSyncs()
	window := 10 * time.Second
	time.Sleep(window)
	bps := float64(tc.totalSent()-sent0) / float64(n) / window.Seconds()
	sps := float64(tc.extraSyncs()-syncs0) / float64(n) / window.Minutes()
	b.StopTimer()
	for name := range tc.live() {
		tc.kill(name)
	}
	b.StartTimer()
	return formed, bps, sps
}

func (tc *testCluster) extraSyncs() int64 {
	var s int64
	for _, a := range tc.live() {
		s += a.extraSyncs.Load()
	}
	return s
}

func (tc *testCluster) totalSent() int64 {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var s int64
	for _, w := range tc.wires {
		s += w.Sent()
	}
	return s
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}
