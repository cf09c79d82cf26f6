// Package poll is knode's one helper for waiting on something outside the
// process (an apiserver, a Node, an etcd member) by looking again and again,
// like k8s.io/apimachinery's wait.PollUntilContextCancel with immediate
// set: a deadline is the context's.
package poll

import (
	"context"
	"time"
)

// Until calls check at once, then every interval, until it reports done
// (nil), fails (check's error), or ctx ends (ctx's error). check runs at
// least once, even with ctx already done: a caller whose waiting time is
// up still gets one look (check picks its own context for that look).
func Until(ctx context.Context, interval time.Duration, check func() (done bool, err error)) error {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			t.Reset(interval)
		}
	}
}
