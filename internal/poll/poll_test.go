package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := Until(ctx, time.Millisecond, func() (bool, error) { n++; return n == 3, nil }); err != nil || n != 3 {
		t.Errorf("done on the third look: %v after %d", err, n)
	}
	boom := errors.New("boom")
	n = 0
	if err := Until(ctx, time.Millisecond, func() (bool, error) { n++; return false, boom }); !errors.Is(err, boom) || n != 1 {
		t.Errorf("a failing check stops at once: %v after %d", err, n)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	n = 0
	if err := Until(short, time.Millisecond, func() (bool, error) { n++; return false, nil }); !errors.Is(err, context.DeadlineExceeded) || n < 2 {
		t.Errorf("a deadline ends the wait: %v after %d looks", err, n)
	}
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	n = 0
	if err := Until(done, time.Hour, func() (bool, error) { n++; return false, nil }); !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("an ended context still gets one look: %v after %d", err, n)
	}
}
