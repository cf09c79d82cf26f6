package pki

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Whatever the due times, masters start renewals only in the first half of
// their own windows: two seats never start within half a window of each
// other, none waits more than one round of windows, and none starts early.
func TestStaggeredTurns(t *testing.T) {
	w := RenewWindow(365 * 24 * time.Hour)
	if w != 15*time.Minute || RenewWindow(5*time.Minute) != 7500*time.Millisecond {
		t.Fatalf("RenewWindow: %s for a year, %s for 5 min", w, RenewWindow(5*time.Minute))
	}
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, seats := range []int{3, 5} {
		for range 2000 {
			// Masters set up within a minute of each other: their certificates
			// come due within that minute.
			due := base.Add(time.Duration(r.Int64N(int64(time.Minute))))
			var starts []time.Time
			for seat := range seats {
				at := due.Add(time.Duration(r.Int64N(int64(time.Minute))))
				s := Staggered(at, seat, seats, w)
				if s.Before(at) || s.Sub(at) > time.Duration(seats)*w {
					t.Fatalf("seat %d of %d due %s starts %s", seat, seats, at, s)
				}
				n := s.UnixNano() / int64(w)
				if int(n%int64(seats)) != seat || s.UnixNano()-n*int64(w) >= int64(w/2) {
					t.Fatalf("seat %d of %d starts %s outside its window's first half", seat, seats, s)
				}
				if Staggered(s, seat, seats, w) != s {
					t.Fatalf("seat %d: its own start %s is not a start", seat, s)
				}
				starts = append(starts, s)
			}
			for i := range starts {
				for j := range i {
					if d := starts[i].Sub(starts[j]).Abs(); d < w/2 {
						t.Fatalf("seats %d and %d of %d start %s apart", i, j, seats, d)
					}
				}
			}
		}
	}
	at := base.Add(7 * time.Second)
	for _, tc := range []struct{ seat, seats int }{{-1, 3}, {0, 1}, {3, 3}} {
		if got := Staggered(at, tc.seat, tc.seats, w); !got.Equal(at) {
			t.Errorf("seat %d of %d: %s, want %s (no turn)", tc.seat, tc.seats, got, at)
		}
	}
}
