package agent

import (
	"fmt"
	"testing"
	"time"
)

// A node asking in a loop gets the burst, then one signing per period; other
// nodes are not held up by it.
func TestCSRLimiter(t *testing.T) {
	l := newCSRLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	signed, firsts := 0, 0
	for i := range 600 { // one request a second for ten minutes
		ok, first := l.allow("w1", now.Add(time.Duration(i)*time.Second))
		if ok {
			signed++
		}
		if first {
			firsts++
		}
	}
	if want := csrBurst + 600/int(csrEvery/time.Second) - 1; signed < want || signed > want+1 {
		t.Errorf("signed %d of 600 requests in 10 min, want about %d", signed, want)
	}
	if firsts != signed-csrBurst+1 {
		t.Errorf("%d refusals logged for %d grants after the burst", firsts, signed-csrBurst)
	}
	if ok, _ := l.allow("w2", now.Add(10*time.Second)); !ok {
		t.Error("another node refused because w1 asked in a loop")
	}
	// Many nodes: the map stays bounded once the old buckets are full again.
	later := now.Add(time.Hour)
	for i := range 3 * csrKeep {
		l.allow(fmt.Sprintf("n%d", i), later.Add(time.Duration(i/csrKeep)*time.Hour))
	}
	if n := len(l.buckets); n > csrKeep+1 {
		t.Errorf("%d limiters kept", n)
	}
}
