package agent

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"knode.dev/knode/gossip"
	"knode.dev/knode/gossip/gossiptest"
)

// BenchmarkFormation forms clusters of real agents on loopback (memberlist's
// LAN timers, encryption on): one init, then every other node joins at the
// same instant through the first. It reports the median time until every
// member sees every other alive and every node holds the same records with
// distinct subnets; the bytes each node sent during formation; and, once
// every broadcast queue is empty, the bytes each node sends per second and
// the CPU the whole process uses, over at least one full push/pull period.
// KNODE_BENCH_NODES (comma-separated) overrides the sizes.
func BenchmarkFormation(b *testing.B) {
	sizes := gossiptest.BenchSizes(b)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var forms []time.Duration
			var formBytes, rest, cores, formCores, failed []float64
			for range b.N {
				r := formCluster(b, n)
				forms = append(forms, r.formed)
				formBytes = append(formBytes, r.formBytes)
				rest = append(rest, r.restBps)
				cores = append(cores, r.restCores)
				formCores = append(formCores, r.formCores)
				failed = append(failed, r.failedProbes)
			}
			b.ReportMetric(gossiptest.Median(forms).Seconds(), "s/converged")
			b.ReportMetric(gossiptest.Median(formBytes), "B/node-formation")
			b.ReportMetric(gossiptest.Median(rest), "B/node/s-at-rest")
			b.ReportMetric(gossiptest.Median(cores), "cores-at-rest")
			b.ReportMetric(gossiptest.Median(formCores), "cores-forming")
			b.ReportMetric(gossiptest.Median(failed), "failed-probes-forming")
		})
	}
}

type formation struct {
	formed               time.Duration
	formBytes            float64 // sent per node until converged
	formCores            float64 // the process's CPU while forming, in cores
	failedProbes         float64 // memberlist probes that failed while forming
	restBps, restCores   float64
	restWindow, drainFor time.Duration
}

func formCluster(b *testing.B, n int) formation {
	plan := testPlan(3)
	if n > 250 {
		plan.NodeCIDRMask = 26 // the /16 pod range holds 1024 subnets, not 256
	}
	tc := newTestClusterTiming(b, plan, gossip.LAN)
	counts0, start, cpuStart := gossiptest.MemberlistCounts(), time.Now(), gossiptest.CPUTime()
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tc.start(fmt.Sprintf("n%03d", i), []string{"n00"}, nil, tc.masterToken, false); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.Logf("%d agents: every join returned after %.2fs", n, time.Since(start).Seconds())
	tc.waitAgreed(3*time.Minute, n, start)
	var r formation
	r.formed = time.Since(start)
	r.formCores = (gossiptest.CPUTime() - cpuStart).Seconds() / r.formed.Seconds()
	fd := gossiptest.Delta(counts0, gossiptest.MemberlistCounts())
	r.failedProbes = float64(fd["degraded.probe"])
	b.Logf("%d agents: memberlist's failure detector while forming: %d failed probes; %d suspect, %d dead and %d alive messages handled",
		n, fd["degraded.probe"], fd["msg.suspect"], fd["msg.dead"], fd["msg.alive"])
	r.formBytes = float64(tc.totalSent()) / float64(n)
	// At rest means: no record left in any broadcast queue.
	drain := time.Now()
	for tc.queued() > 0 && time.Since(drain) < 2*time.Minute {
		time.Sleep(100 * time.Millisecond)
	}
	r.drainFor = time.Since(drain)
	r.restWindow = max(10*time.Second, pushPullPeriod(n)+time.Second)
	if w, err := time.ParseDuration(os.Getenv("KNODE_BENCH_DEBUG")); err == nil {
		r.restWindow = w // a shorter window while debugging (not a figure)
	}
	sent0, cpu0 := tc.totalSent(), gossiptest.CPUTime()
	if path := os.Getenv("KNODE_BENCH_REST_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	time.Sleep(r.restWindow)
	r.restBps = float64(tc.totalSent()-sent0) / float64(n) / r.restWindow.Seconds()
	r.restCores = (gossiptest.CPUTime() - cpu0).Seconds() / r.restWindow.Seconds()
	b.Logf("%d agents: converged %.2fs, %.0f B/node to form, queues empty %.1fs later, then %.0f B/node/s and %.3f cores over %s",
		n, r.formed.Seconds(), r.formBytes, r.drainFor.Seconds(), r.restBps, r.restCores, r.restWindow)
	b.StopTimer()
	for name := range tc.live() {
		tc.kill(name)
	}
	b.StartTimer()
	return r
}

// pushPullPeriod is memberlist's push/pull interval for the LAN profile,
// scaled up with the cluster's size as memberlist does.
func pushPullPeriod(n int) time.Duration {
	const interval, scaleThreshold = 30 * time.Second, 32
	if n <= scaleThreshold {
		return interval
	}
	mult := math.Ceil(math.Log2(float64(n))-math.Log2(scaleThreshold)) + 1
	return time.Duration(mult) * interval
}

// waitAgreed waits until every agent sees n members alive and holds the same
// records (equal digests), with n active decisions and no subnet twice. It
// reads only digests and counts while waiting, so the harness costs little.
// KNODE_BENCH_TRACE=1 logs the progress every half second.
func (tc *testCluster) waitAgreed(timeout time.Duration, n int, start time.Time) {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	var members, decided, records time.Duration
	var lastTrace time.Time
	for time.Now().Before(deadline) {
		if tc.agreed(n) {
			tc.t.Logf("the allocator decided for all after %.2fs; all members alive everywhere after %.2fs; all records equal after %.2fs; both after %.2fs",
				decided.Seconds(), members.Seconds(), records.Seconds(), time.Since(start).Seconds())
			return
		}
		if members == 0 && tc.allAlive(n) {
			members = time.Since(start)
		}
		if records == 0 && tc.sameDigest(n) {
			records = time.Since(start)
		}
		if decided == 0 && len(tc.live()[tc.first].Snapshot().Assignments) == n {
			decided = time.Since(start)
		}
		if os.Getenv("KNODE_BENCH_TRACE") != "" && time.Since(lastTrace) >= 500*time.Millisecond {
			lastTrace = time.Now()
			tc.t.Logf("%5.1fs %s", time.Since(start).Seconds(), tc.progress(n))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tc.t.Fatalf("%d agents did not agree in %s: %s", n, timeout, tc.disagreement(n))
}

// disagreement says how far the agents are from agreeing, for a failed wait.
func (tc *testCluster) disagreement(n int) string {
	live := tc.live()
	minAlive, maxAlive, short := n, 0, 0
	digests := map[uint64]int{}
	for _, a := range live {
		alive := a.g.NumAlive()
		minAlive, maxAlive = min(minAlive, alive), max(maxAlive, alive)
		if alive != n {
			short++
		}
		dg, _ := a.state.Digest()
		digests[dg]++
	}
	active, cidrs := 0, map[netip.Prefix]bool{}
	if first := live[tc.first]; first != nil {
		for _, as := range first.Snapshot().Assignments {
			if as.Active() {
				active++
				cidrs[as.PodCIDR] = true
			}
		}
	}
	return fmt.Sprintf("%d agents live; alive counts %d..%d (%d agents see fewer than %d); %d distinct digests; the first holds %d active decisions on %d subnets",
		len(live), minAlive, maxAlive, short, n, len(digests), active, len(cidrs))
}

// progress is a one-line picture of a formation under way: distinct digests
// (and the largest group agreeing), the range of record counts, the fewest
// members any agent sees alive, and the records still queued for broadcast.
func (tc *testCluster) progress(n int) string {
	digests := map[uint64]int{}
	minRecs, maxRecs, minAlive := math.MaxInt, 0, n
	for _, a := range tc.live() {
		dg, c := a.state.Digest()
		digests[dg]++
		minRecs, maxRecs = min(minRecs, c), max(maxRecs, c)
		minAlive = min(minAlive, a.g.NumAlive())
	}
	largest := 0
	for _, c := range digests {
		largest = max(largest, c)
	}
	return fmt.Sprintf("%d digests (largest group %d), records %d..%d, fewest alive %d, queued %d, cpu %.1fs",
		len(digests), largest, minRecs, maxRecs, minAlive, tc.queued(), gossiptest.CPUTime().Seconds())
}

func (tc *testCluster) sameDigest(n int) bool {
	seen := map[uint64]bool{}
	for _, a := range tc.live() {
		dg, c := a.state.Digest()
		if c < n {
			return false
		}
		seen[dg] = true
	}
	return len(seen) == 1
}

func (tc *testCluster) allAlive(n int) bool {
	for _, a := range tc.live() {
		if a.g.NumAlive() != n {
			return false
		}
	}
	return true
}

func (tc *testCluster) agreed(n int) bool {
	live := tc.live()
	var first *Agent
	var digest uint64
	for _, a := range live {
		if a.g.NumAlive() != n {
			return false
		}
		dg, _ := a.state.Digest()
		if first == nil {
			first, digest = a, dg
		} else if dg != digest {
			return false
		}
	}
	if first == nil {
		return false
	}
	cidrs := map[netip.Prefix]bool{}
	for _, as := range first.Snapshot().Assignments {
		if !as.Active() || cidrs[as.PodCIDR] {
			return false
		}
		cidrs[as.PodCIDR] = true
	}
	return len(cidrs) == n
}

func (tc *testCluster) queued() int {
	total := 0
	for _, a := range tc.live() {
		total += a.g.Queued()
	}
	return total
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
