package agent

import (
	"context"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/etcdmember"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/roles"
)

// SnapshotPolicy is how often a master saves a scheduled etcd snapshot in its
// data directory and how many it keeps (k3s's defaults: every 12 h, keep 5).
type SnapshotPolicy struct {
	Every time.Duration
	Keep  int
}

// The policy of knode.service.
const (
	SnapshotEvery = 12 * time.Hour
	SnapshotKeep  = 5
)

// LocalEtcd is this master's own etcd member.
const LocalEtcd = "https://127.0.0.1:2379"

// SaveSnapshot saves a snapshot of this master's etcd member into the data
// directory's snapshots and returns its path.
func SaveSnapshot(ctx context.Context, dir datadir.Dir, kind, node string) (string, error) {
	cli, err := etcdmember.Dial(hostprep.EtcdClientConfig(LocalEtcd))
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return cli.Save(ctx, dir.Path(datadir.SnapshotsDir), kind, node, time.Now())
}

// snapshotLoop saves a scheduled snapshot every policy period while this
// node is a master with a configured host, keeping the newest ones, until
// Stop. The first comes one period after the start: a restart must not add
// a snapshot each time.
func (a *Agent) snapshotLoop(p SnapshotPolicy) {
	a.every(p.Every, func() {
		if h := a.hostOpts(); h == nil || h.Host == nil || !roles.IsMaster(a.state.Snapshot(), a.id.Name) {
			return
		}
		ctx, cancel := context.WithTimeout(a.ctx, 5*time.Minute)
		p2, err := SaveSnapshot(ctx, a.opts.Dir, etcdmember.Scheduled, a.id.Name)
		cancel()
		if err != nil {
			a.log.Error("scheduled etcd snapshot", "err", err)
			return
		}
		removed, err := etcdmember.Prune(a.opts.Dir.Path(datadir.SnapshotsDir), p.Keep)
		a.log.Info("saved a scheduled etcd snapshot", "path", p2, "pruned", len(removed), "err", err)
	})
}
