package gossiptest

import (
	"cmp"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-metrics"
)

var (
	sinkOnce sync.Once
	sink     *metrics.InmemSink
)

// MemberlistCounts returns memberlist's own counters (go-metrics, which
// memberlist reports to a process-wide sink) summed since the first call,
// keyed without their "memberlist." prefix: "msg.suspect", "msg.dead",
// "msg.alive", "degraded.probe" (a probe that failed). Benchmarks use them
// to tell a slow formation from one that its failure detector disturbed.
func MemberlistCounts() map[string]int {
	sinkOnce.Do(func() {
		sink = metrics.NewInmemSink(time.Hour, 24*time.Hour)
		cfg := metrics.DefaultConfig("")
		cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
		if _, err := metrics.NewGlobal(cfg, sink); err != nil {
			panic(err) // only an invalid config fails
		}
	})
	out := map[string]int{}
	for _, iv := range sink.Data() {
		for k, c := range iv.Counters {
			if name, ok := strings.CutPrefix(k, "memberlist."); ok {
				out[name] += c.Count
			}
		}
	}
	return out
}

// Delta is what each counter grew by between two MemberlistCounts calls.
func Delta(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// BenchSizes is the cluster sizes a formation benchmark runs: 10, 50 and 200
// agents, or the comma-separated list in KNODE_BENCH_NODES.
func BenchSizes(tb testing.TB) []int {
	env := os.Getenv("KNODE_BENCH_NODES")
	if env == "" {
		return []int{10, 50, 200}
	}
	var sizes []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			tb.Fatalf("KNODE_BENCH_NODES=%s: %v", env, err)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// CPUTime is the CPU time this process has used so far (user and system).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Median is the median of v (the upper one of an even count); v is not
// modified.
func Median[T cmp.Ordered](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
