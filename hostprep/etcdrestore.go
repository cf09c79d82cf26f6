package hostprep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"time"

	"knode.dev/knode/manifests"
)

// Restoring etcd from a snapshot, as etcd's and kubeadm's guides do it: one
// master (the restorer) makes a new single-member cluster from the snapshot
// with etcdutl (a new cluster ID), and every other master then joins that
// cluster as a new member with an empty data directory. Nothing is deleted:
// each master's previous data directory is set aside under a name holding
// the restore's time, and the restorer puts its own back if the restored
// member does not become healthy.

// etcdRestoreBump is how far the restored revision jumps (etcdutl
// --bump-revision, with --mark-compacted), as Kubernetes' etcd restore guide
// advises: every watcher and informer then sees its revision compacted and
// lists again, instead of trusting a cache newer than the snapshot.
const etcdRestoreBump = 1_000_000_000

// EtcdRestoreDirs are the directories of one restore under EtcdRestoresDir,
// named after its time (a UTC stamp): the restored data before it takes
// EtcdDataDir's place, and the previous data directory kept after.
func EtcdRestoreDirs(stamp string) (restored, before string) {
	return path.Join(EtcdRestoresDir, stamp+".restored"), path.Join(EtcdRestoresDir, stamp+".before")
}

// EtcdRestore is one restore of this master's etcd from a verified snapshot.
type EtcdRestore struct {
	Snapshot string
	// Stamp names the restore's directories (EtcdRestoreDirs).
	Stamp string
	// Healthy returns nil once the local etcd serves as the restored
	// one-member cluster; RestoreEtcd calls it until it does or ctx ends.
	Healthy func(ctx context.Context) error
	// Wait bounds the wait for Healthy (default 2 min).
	Wait time.Duration
}

// EtcdRestoreSteps describes, in order, what RestoreEtcd will do (for
// --dry-run).
func EtcdRestoreSteps(s *Spec, r EtcdRestore) []string {
	sd := s.withDefaults()
	restored, before := EtcdRestoreDirs(r.Stamp)
	return []string{
		fmt.Sprintf("run %s %v", path.Join(sd.Payload.BinDir, "etcdutl"), etcdutlRestoreArgs(&sd, r.Snapshot, restored, r.Stamp)),
		fmt.Sprintf("move %s to %s (kept)", EtcdDataDir, before),
		fmt.Sprintf("move %s to %s", restored, EtcdDataDir),
		fmt.Sprintf("restart the containers of kube-system/etcd-%s and wait until it serves alone (else put %s back)", s.Self.Name, before),
		fmt.Sprintf("restart the containers of kube-apiserver, kube-controller-manager and kube-scheduler on %s", s.Self.Name),
	}
}

// etcdutlRestoreArgs makes the new member what this master's etcd manifest
// says it is (name, peer URL), alone in its cluster. Its cluster token is the
// manifest's with the restore's stamp: etcd derives member IDs from peer URLs
// and the token, and a member with its old ID takes the old cluster's
// heartbeats (its other masters still run it) for its own and panics on a
// commit index beyond its restored log (seen in the lab). With a new token
// its ID and the cluster's differ; the manifest's token only matters for a
// first start, which a restored member never has.
func etcdutlRestoreArgs(s *Spec, snapshot, dataDir, stamp string) []string {
	peer := "https://" + netip.AddrPortFrom(s.Self.Address, 2380).String()
	return []string{"snapshot", "restore", snapshot,
		"--data-dir", dataDir,
		"--name", s.Self.Name,
		"--initial-cluster", s.Self.Name + "=" + peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster-token", "knode-" + s.Cluster.Name + "-restored-" + stamp,
		"--bump-revision", fmt.Sprint(etcdRestoreBump), "--mark-compacted"}
}

// EtcdRestoreResult says where the data went.
type EtcdRestoreResult struct {
	DataDir string `json:"dataDir"`
	// Before is the previous data directory, kept: delete it by hand once
	// the cluster is as wanted.
	Before string `json:"before"`
	// Restarted lists the static pods restarted on the restored data.
	Restarted []string `json:"restarted"`
}

// RestoreEtcd restores this master's etcd from r.Snapshot: etcdutl writes the
// restored member into a new directory (a failure there changes nothing),
// which then takes EtcdDataDir's place, the previous one kept beside it; the
// etcd pod's containers are restarted onto it (the kubelet starts them again
// in the same pod). If the restored member does not become healthy the
// previous data directory is put back and etcd restarted on it. Then the
// apiserver, controller manager and scheduler are restarted, so that no
// cache of the discarded state outlives it.
func RestoreEtcd(ctx context.Context, s *Spec, h *Host, r EtcdRestore, log *slog.Logger) (EtcdRestoreResult, error) {
	sd := s.withDefaults()
	s = &sd
	restored, before := EtcdRestoreDirs(r.Stamp)
	res := EtcdRestoreResult{DataDir: EtcdDataDir, Before: before}
	if !s.Self.Master {
		return res, fmt.Errorf("restore etcd on %s: not a master", s.Self.Name)
	}
	for _, p := range []string{restored, before} {
		if h.Files.Exists(p) {
			return res, fmt.Errorf("restore etcd: %s exists already (a restore with the same time?): move it away and try again", p)
		}
	}
	if !h.Files.Exists(path.Join(EtcdDataDir, "member")) {
		return res, fmt.Errorf("restore etcd: %s holds no etcd member: is this master's etcd set up?", EtcdDataDir)
	}
	if err := h.Files.MkdirAll(EtcdRestoresDir, 0o700); err != nil {
		return res, fmt.Errorf("restore etcd: %w", err)
	}
	etcdutl := path.Join(s.Payload.BinDir, "etcdutl")
	if out, err := h.Exec.Run(ctx, etcdutl, etcdutlRestoreArgs(s, r.Snapshot, restored, r.Stamp)...); err != nil {
		rmErr := h.Files.RemoveAll(restored)
		h.Files.Remove(EtcdRestoresDir) // when empty: earlier restores keep theirs
		return res, errors.Join(fmt.Errorf("etcdutl snapshot restore %s into %s: %w: %s (nothing changed)", r.Snapshot, restored, err, tail(out)), rmErr)
	}
	if err := h.Files.Rename(EtcdDataDir, before); err != nil {
		rmErr := h.Files.RemoveAll(restored)
		return res, errors.Join(fmt.Errorf("set %s aside: %w (nothing changed)", EtcdDataDir, err), rmErr)
	}
	if err := h.Files.Rename(restored, EtcdDataDir); err != nil {
		return res, errors.Join(fmt.Errorf("move the restored data into %s: %w", EtcdDataDir, err), putBack(ctx, s, h, before, restored+".failed"))
	}
	etcdPod := "etcd-" + s.Self.Name
	if _, err := h.Pods.RestartContainers(ctx, "kube-system", etcdPod); err != nil {
		return res, errors.Join(fmt.Errorf("restart etcd on the restored data: %w", err), putBack(ctx, s, h, before, restored+".failed"))
	}
	wait := r.Wait
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	if err := waitHealthy(ctx, r.Healthy, wait); err != nil {
		return res, errors.Join(fmt.Errorf("the restored etcd member did not become healthy within %s: %w", wait, err), putBack(ctx, s, h, before, restored+".failed"))
	}
	log.Info("etcd restored from a snapshot", "snapshot", r.Snapshot, "before", before)
	var err error
	if res.Restarted, err = RestartControlPlane(ctx, s, h); err != nil {
		return res, fmt.Errorf("etcd is restored, but: %w (restart it by hand)", err)
	}
	return res, nil
}

// putBack returns the previous data directory to its place after a failed
// restore, the restored one moved to failed, and restarts etcd on it.
func putBack(ctx context.Context, s *Spec, h *Host, before, failed string) error {
	if h.Files.Exists(EtcdDataDir) {
		if err := h.Files.Rename(EtcdDataDir, failed); err != nil {
			return fmt.Errorf("put %s back: move the restored data to %s: %w (do it by hand)", before, failed, err)
		}
	}
	if err := h.Files.Rename(before, EtcdDataDir); err != nil {
		return fmt.Errorf("put %s back to %s: %w (do it by hand)", before, EtcdDataDir, err)
	}
	if _, err := h.Pods.RestartContainers(ctx, "kube-system", "etcd-"+s.Self.Name); err != nil {
		return fmt.Errorf("%s is back; restart etcd: %w", EtcdDataDir, err)
	}
	return fmt.Errorf("the previous etcd data is back in %s (the restored one in %s)", EtcdDataDir, failed)
}

// waitHealthy polls healthy every second until it returns nil or wait ends.
func waitHealthy(ctx context.Context, healthy func(context.Context) error, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		err := healthy(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// tail is the end of a program's output, for an error message.
func tail(out []byte) string {
	const n = 400
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return string(out)
}

// RejoinEtcd makes this master's etcd a new member of the cluster that the
// master via restored: its etcd manifest is removed (the kubelet stops the
// pod) and, once no container of the pod runs, its data directory is set
// aside as before; it is then added as a member through via alone (not
// through the other masters, which may still run the old cluster) and its
// manifest written again with that membership. Each step is skipped when it
// is done already, so an interrupted rejoin continues where it stopped.
func RejoinEtcd(ctx context.Context, s *Spec, h *Host, via Node, before string, log *slog.Logger) error {
	sd := s.withDefaults()
	s = &sd
	manifest := path.Join(ManifestsDir, "etcd.yaml")
	if h.Files.Exists(manifest) {
		if err := h.Files.Remove(manifest); err != nil {
			return fmt.Errorf("rejoin etcd through %s: stop etcd: %w", via.Name, err)
		}
	}
	if err := waitStopped(ctx, h, "etcd-"+s.Self.Name); err != nil {
		return fmt.Errorf("rejoin etcd through %s: %w", via.Name, err)
	}
	if h.Files.Exists(EtcdDataDir) {
		if h.Files.Exists(before) {
			return fmt.Errorf("rejoin etcd through %s: both %s and %s exist: move one away", via.Name, EtcdDataDir, before)
		}
		if err := h.Files.MkdirAll(EtcdRestoresDir, 0o700); err != nil {
			return fmt.Errorf("rejoin etcd through %s: %w", via.Name, err)
		}
		if err := h.Files.Rename(EtcdDataDir, before); err != nil {
			return fmt.Errorf("rejoin etcd through %s: set %s aside: %w", via.Name, EtcdDataDir, err)
		}
	}
	e := &Env{Spec: s, Host: h, Log: log}
	members, err := joinEtcd(ctx, e, []Node{via})
	if err != nil {
		return err
	}
	cp := controlPlane(s)
	cp.Members, cp.EtcdClusterState = members, "existing"
	if err := h.Files.WriteFile(manifest, manifests.EtcdPod(cp), 0o600); err != nil {
		return fmt.Errorf("rejoin etcd through %s: write %s: %w", via.Name, manifest, err)
	}
	log.Info("etcd rejoined the restored cluster", "via", via.Name, "before", before)
	return nil
}

// RestartControlPlane restarts the apiserver, controller manager and
// scheduler of this master (those whose manifest exists), after its etcd
// changed under them, and returns the ones it restarted.
func RestartControlPlane(ctx context.Context, s *Spec, h *Host) ([]string, error) {
	var done []string
	for _, pod := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !h.Files.Exists(path.Join(ManifestsDir, pod+".yaml")) {
			continue
		}
		if _, err := h.Pods.RestartContainers(ctx, "kube-system", pod+"-"+s.Self.Name); err != nil {
			return done, fmt.Errorf("restart %s on %s: %w", pod, s.Self.Name, err)
		}
		done = append(done, pod)
	}
	return done, nil
}

// etcdStopWait bounds the wait for the kubelet to stop a removed pod.
const etcdStopWait = time.Minute

// waitStopped waits until no container of the static pod runs, its
// manifest being gone: it stops any it finds (the kubelet does not start
// them again without a manifest) and is done when two looks a second apart
// find none.
func waitStopped(ctx context.Context, h *Host, pod string) error {
	deadline := time.Now().Add(etcdStopWait)
	quiet := 0
	for quiet < 2 {
		n, err := h.Pods.RestartContainers(ctx, "kube-system", pod)
		if err != nil {
			return fmt.Errorf("stop the containers of %s: %w", pod, err)
		}
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containers of kube-system/%s still running %s after its manifest was removed", pod, etcdStopWait)
		}
		if quiet < 2 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}
