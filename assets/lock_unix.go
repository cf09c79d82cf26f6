//go:build unix

package assets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"knode.dev/knode/internal/poll"
)

// lockPoll is how often a waiting Stage retries the lock.
const lockPoll = 20 * time.Millisecond

// lock takes an exclusive flock on path, waiting until it is free or ctx ends. The lock is
// held by the open file description, so two goroutines of one process exclude each other as
// two processes do, and it vanishes when its holder dies.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open staging lock %s: %w", path, err)
	}
	err = poll.Until(ctx, lockPoll, func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return false, fmt.Errorf("lock %s: %w", path, err)
		}
		return false, nil
	})
	if err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for staging lock %s: %w", path, ctx.Err())
		}
		return nil, err
	}
	return func() { f.Close() }, nil // closing releases the flock
}
