package agent

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// A master signs one node's certificate requests at most csrBurst times at
// once and then once per csrEvery: a join or a renewal needs one answer (a
// few when letters are lost, as the node asks again every 2 s), so an honest
// node never waits, and a node that asks in a loop (a worker-token holder,
// say) cannot keep a master signing.
const (
	csrBurst = 4
	csrEvery = 30 * time.Second
	// csrKeep bounds the limiters kept; past it, those of nodes that have not
	// asked lately (their bucket full again) are dropped.
	csrKeep = 1024
)

// csrLimiter holds one token bucket per node that asked.
type csrLimiter struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	denied  map[string]bool // refused since its last grant: logged once
}

func newCSRLimiter() *csrLimiter {
	return &csrLimiter{buckets: map[string]*rate.Limiter{}, denied: map[string]bool{}}
}

// allow reports whether node's requests may be signed at now, and whether a
// refusal is the first since its last grant (worth a log line).
func (l *csrLimiter) allow(node string, now time.Time) (ok, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[node]
	if !found {
		if len(l.buckets) >= csrKeep {
			for n, old := range l.buckets {
				if old.TokensAt(now) >= csrBurst {
					delete(l.buckets, n)
					delete(l.denied, n)
				}
			}
		}
		b = rate.NewLimiter(rate.Every(csrEvery), csrBurst)
		l.buckets[node] = b
	}
	if b.AllowN(now, 1) {
		delete(l.denied, node)
		return true, false
	}
	first = !l.denied[node]
	l.denied[node] = true
	return false, first
}
