package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/etcdmember"
)

// etcdCommand is `knode etcd snapshot save|list` and `knode etcd restore
// <snapshot>`: one command whose words are arguments, so that its flags may
// stand anywhere (see interspersed).
func etcdCommand() *cli.Command {
	return &cli.Command{
		Name:      "etcd",
		Usage:     "etcd snapshots of this master: `knode etcd snapshot save|list`, `knode etcd restore <snapshot>`",
		ArgsUsage: "snapshot save | snapshot list | restore <snapshot>",
		Description: "save: a snapshot of this master's etcd member now, into --data-dir/snapshots (a manual one,\n" +
			"never pruned); prints its path. list: the snapshots there, newest first.\n" +
			"knode.service also saves a scheduled snapshot every 12 h on each master and keeps the newest 5.\n" +
			"`knode reset` deletes them with the data dir (`--keep-data` keeps them).\n\n" +
			"restore: on one master, makes a new one-member etcd cluster from a snapshot that save wrote\n" +
			"(its SHA-256 is checked first; nothing is touched if it does not match). The previous data\n" +
			"directory is kept in /var/lib/etcd-restores/<time>.before and put back if the restored member does\n" +
			"not become healthy. Then this master's agent announces the restore and every other master sets its\n" +
			"etcd data aside and joins the restored cluster as a new member, with no step of yours. A restore\n" +
			"rolls the whole cluster back: over a healthy etcd it needs --force. --dry-run lists the steps.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "force", Usage: "restore: roll back even an etcd that is healthy (every write since the snapshot is lost)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "restore: check the snapshot and this master, list the steps, change nothing"}},
		Action: func(c *cli.Context) error {
			dir := datadir.Dir{Root: c.String("data-dir")}
			if args := c.Args().Slice(); len(args) == 2 && args[0] == "restore" {
				return etcdRestore(c, dir, args[1])
			}
			switch args := strings.Join(c.Args().Slice(), " "); args {
			case "snapshot save":
				return snapshotSave(c, dir)
			case "snapshot list":
				return snapshotList(c, dir)
			default:
				return config.Usagef("knode etcd %q: want `snapshot save`, `snapshot list` or `restore <snapshot>`", args)
			}
		},
	}
}

func snapshotSave(c *cli.Context, dir datadir.Dir) error {
	if err := requireRoot("read etcd's client certificate"); err != nil {
		return err
	}
	var id datadir.Identity
	if err := dir.ReadJSON(datadir.NodeFile, &id); err != nil {
		return fmt.Errorf("no node in %s (run it on a master, or pass its --data-dir): %w", dir.Root, err)
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
	defer cancel()
	p, err := agent.SaveSnapshot(ctx, dir, etcdmember.Manual, id.Name)
	if err != nil {
		return fmt.Errorf("%w (is this node a master with etcd running?)", err)
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(map[string]string{"path": p})
	}
	fmt.Fprintln(c.App.Writer, p)
	return nil
}

func snapshotList(c *cli.Context, dir datadir.Dir) error {
	files, err := etcdmember.List(dir.Path(datadir.SnapshotsDir))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if files == nil {
			files = []etcdmember.SnapshotFile{}
		}
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(files)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tSIZE\tPATH")
	for _, f := range files {
		fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\n", f.Time.Format(time.RFC3339), f.Kind, float64(f.Size)/1e6, f.Path)
	}
	return tw.Flush()
}
