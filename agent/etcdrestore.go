package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"time"

	"knode.dev/knode/datadir"
	"knode.dev/knode/etcdmember"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/roles"
)

// After `knode etcd restore` on one master (the restorer: hostprep.RestoreEtcd,
// run by the command itself), its agent announces the restore's time in its
// signed node record (EtcdRestored). Every other master's host loop then sees
// it (roles.EtcdRestoreToFollow: only a seated master's announcement counts)
// and, unless its etcd already belongs to the restorer's cluster (same etcd
// cluster ID: it was promoted after the restore, or rejoined before a
// restart), rejoins as a new member through the restorer alone
// (hostprep.RejoinEtcd), its previous data kept under the same time, and
// restarts its apiserver, controller manager and scheduler.

// RestoreStamp names a restore's directories after its time (UTC), the same
// on every master.
func RestoreStamp(at uint64) string {
	return time.Unix(0, int64(at)).UTC().Format("20060102T150405Z")
}

// EtcdRestoreRequest is what `knode etcd restore` tells the agent once the
// restored member is healthy.
type EtcdRestoreRequest struct {
	At uint64 `json:"at"` // unix nanoseconds, the restore's time
}

// EtcdRestored records that this master restored etcd at the time at and
// announces it to the other masters. Only a seated master holding the master
// keys may: ErrNotMaster otherwise.
func (a *Agent) EtcdRestored(at uint64) error {
	if !roles.IsMaster(a.state.Snapshot(), a.id.Name) || !a.HasSecrets() {
		return ErrNotMaster
	}
	if now := uint64(time.Now().UnixNano()); at == 0 || at > now {
		return fmt.Errorf("restore time %d is not in the past", at)
	}
	if err := a.saveIdentity(func(id *datadir.Identity) {
		id.EtcdRestore, id.EtcdFollowed = at, max(id.EtcdFollowed, at)
	}); err != nil {
		return fmt.Errorf("record the etcd restore: %w", err)
	}
	a.log.Info("etcd restored from a snapshot: announcing it to the other masters", "at", RestoreStamp(at))
	return a.publishSelf(nil)
}

// RequestEtcdRestored tells the agent on socket that etcd was restored at at.
func RequestEtcdRestored(ctx context.Context, socket string, at uint64) error {
	return Call(ctx, socket, http.MethodPost, "/v1/etcd/restored", EtcdRestoreRequest{At: at}, nil)
}

// followEtcdRestore rejoins this master's etcd to the cluster another master
// restored, when there is a newer restore than the one it follows. It runs in
// the host loop, the one owner of host changes.
func (a *Agent) followEtcdRestore(ctx context.Context, spec hostprep.Spec, h *HostOptions) error {
	if !spec.Self.Master || !a.HasSecrets() {
		return nil
	}
	a.mu.Lock()
	followed := a.id.EtcdFollowed
	a.mu.Unlock()
	name, at, ok := roles.EtcdRestoreToFollow(a.state.Snapshot(), a.id.Name, followed)
	if !ok {
		return nil
	}
	var via hostprep.Node
	for _, p := range spec.Peers {
		if p.Name == name {
			via = p
		}
	}
	if !via.Address.IsValid() {
		return nil // not placed yet: its decision comes with the next change
	}
	manifest := h.Host.Files.Exists(path.Join(hostprep.ManifestsDir, "etcd.yaml"))
	same, err := sameEtcdCluster(ctx, LocalEtcd, "https://"+netip.AddrPortFrom(via.Address, 2379).String())
	switch {
	case err != nil && manifest:
		return fmt.Errorf("follow the etcd restore of %s: %w", name, err)
	case err == nil && same:
		a.log.Info("etcd is part of the restored cluster already", "restorer", name)
	default:
		_, before := hostprep.EtcdRestoreDirs(RestoreStamp(at))
		a.log.Info("etcd was restored on another master: rejoining its cluster", "restorer", name, "keep", before)
		if err := hostprep.RejoinEtcd(ctx, &spec, h.Host, via, before, a.log); err != nil {
			return err
		}
		if _, err := hostprep.RestartControlPlane(ctx, &spec, h.Host); err != nil {
			return err
		}
	}
	return a.saveIdentity(func(id *datadir.Identity) { id.EtcdFollowed = max(id.EtcdFollowed, at) })
}

// sameEtcdCluster reports whether the etcd members at two client URLs belong
// to one cluster (etcd's cluster ID).
func sameEtcdCluster(ctx context.Context, local, other string) (bool, error) {
	var ids [2]uint64
	for i, ep := range []string{local, other} {
		cli, err := etcdmember.Dial(hostprep.EtcdClientConfig(ep))
		if err != nil {
			return false, err
		}
		ids[i], err = cli.ClusterID(ctx)
		cli.Close()
		if err != nil {
			return false, err
		}
	}
	return ids[0] == ids[1], nil
}
