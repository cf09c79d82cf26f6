package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/assets"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/etcdmember"
	"knode.dev/knode/hostprep"
)

// restoreResult is what `knode etcd restore --json` prints.
type restoreResult struct {
	etcdmember.SnapshotCheck
	hostprep.EtcdRestoreResult
	At     string   `json:"at"`
	DryRun bool     `json:"dryRun,omitempty"`
	Steps  []string `json:"steps,omitempty"`
}

// etcdRestore is `knode etcd restore <snapshot>`: every check first (the
// file, this node, its etcd), then hostprep.RestoreEtcd, then the agent
// announces the restore so that the other masters rejoin.
func etcdRestore(c *cli.Context, dir datadir.Dir, snapshot string) error {
	if err := requireRoot("read etcd's credentials and replace its data"); err != nil {
		return err
	}
	chk, err := etcdmember.VerifySnapshot(snapshot)
	switch {
	case errors.Is(err, etcdmember.ErrNotSnapshot), errors.Is(err, fs.ErrNotExist):
		return config.Usagef("%v (`knode etcd snapshot list` shows this master's snapshots)", err)
	case err != nil:
		return err
	}
	if !dir.Initialised() {
		return config.Usagef("--data-dir %s holds no node: run it on a master, or pass its --data-dir", dir.Root)
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	spec, err := restoreSpec(ctx, dir)
	if err != nil {
		return err
	}
	h, err := hostprep.NewLinuxHost("/")
	if err != nil {
		return fmt.Errorf("open the host: %w", err)
	}
	if etcdutl := path.Join(spec.Payload.BinDir, "etcdutl"); !h.Files.Exists(etcdutl) {
		return fmt.Errorf("%s is missing: this knode has no staged payload (run the knode that set up this node)", etcdutl)
	}
	var healthy string
	if n, err := localEtcdHealthy(ctx); err == nil && !c.Bool("force") {
		healthy = fmt.Sprintf("etcd on this master is running and healthy (%d members): a restore rolls the whole cluster back to %s and drops every write since; "+
			"pass --force to do that (with quorum lost, no --force is needed)", n, snapshot)
		if !c.Bool("dry-run") {
			return cli.Exit(healthy, exitError)
		}
	}
	at := uint64(time.Now().UnixNano())
	r := hostprep.EtcdRestore{Snapshot: snapshot, Stamp: agent.RestoreStamp(at), Healthy: func(ctx context.Context) error {
		n, err := localEtcdHealthy(ctx)
		if err == nil && n != 1 {
			return fmt.Errorf("etcd answers with %d members, not as the restored one", n)
		}
		return err
	}}
	res := restoreResult{SnapshotCheck: chk, At: time.Unix(0, int64(at)).UTC().Format(time.RFC3339)}
	if c.Bool("dry-run") {
		res.DryRun = true
		res.Steps = append(hostprep.EtcdRestoreSteps(&spec, r), "announce the restore: every other master sets its etcd data aside and joins this one's cluster")
		if healthy != "" {
			res.Steps = append(res.Steps, "but refuse now: "+healthy)
		}
		return printRestore(c, res)
	}
	fmt.Fprintf(c.App.ErrWriter, "snapshot %s verified (%d bytes, sha256 %s…); restoring etcd on %s\n", snapshot, chk.Size, chk.SHA256[:12], spec.Self.Name)
	res.EtcdRestoreResult, err = hostprep.RestoreEtcd(ctx, &spec, h, r, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if err := agent.RequestEtcdRestored(ctx, dir.Socket(), at); err != nil {
		return fmt.Errorf("etcd is restored on this master, but the other masters were not told (run `systemctl start knode` here: the agent announces it; until then they keep the old cluster): %w", err)
	}
	return printRestore(c, res)
}

// restoreSpec is this node's host spec, which must be a master's with its
// etcd in place; the agent must answer, since it announces the restore.
func restoreSpec(ctx context.Context, dir datadir.Dir) (hostprep.Spec, error) {
	st, err := agent.QueryStatus(ctx, dir.Socket())
	if err != nil {
		return hostprep.Spec{}, fmt.Errorf("a restore is announced to the other masters by this node's agent: %w", err)
	}
	for _, m := range st.Members {
		if m.Name == st.Self && !slices.Contains(m.Roles, "master") {
			return hostprep.Spec{}, fmt.Errorf("%s is not a master (roles %v): run `knode etcd restore` on a master", st.Self, m.Roles)
		}
	}
	m, err := assets.ReadManifest()
	if err != nil && !errors.Is(err, assets.ErrNoPayload) {
		return hostprep.Spec{}, err
	}
	p, imgs := payloadSpec(m, dir.Root)
	spec, err := agent.SavedSpec(dir, &agent.HostOptions{Payload: p, Images: imgs, KnodeBinary: selfPath()})
	if err != nil {
		return spec, err
	}
	if !spec.Self.Master {
		return spec, fmt.Errorf("%s is not a master: run `knode etcd restore` on a master", spec.Self.Name)
	}
	return spec, nil
}

// localEtcdHealthy asks this master's etcd whether its cluster has quorum.
func localEtcdHealthy(ctx context.Context) (int, error) {
	cli, err := etcdmember.Dial(hostprep.EtcdClientConfig(agent.LocalEtcd))
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	return cli.Healthy(ctx)
}

func printRestore(c *cli.Context, res restoreResult) error {
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	w := c.App.Writer
	if res.DryRun {
		fmt.Fprintf(w, "snapshot %s verified (%d bytes); a restore would:\n", res.Path, res.Size)
		for _, s := range res.Steps {
			fmt.Fprintf(w, "  %s\n", s)
		}
		return nil
	}
	fmt.Fprintf(w, "etcd restored from %s: a new one-member cluster on this master\n", res.Path)
	fmt.Fprintf(w, "previous data kept in %s (delete it once the cluster is as wanted)\n", res.Before)
	fmt.Fprintf(w, "restarted %v; the other masters now rejoin this one's etcd (`knode status` shows them healthy again)\n", res.Restarted)
	return nil
}
