package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
	"knode.dev/knode/roles"
)

func certsCommand() *cli.Command {
	return &cli.Command{
		Name:  "certs",
		Usage: "list this node's certificates (PKI files and kubeconfigs) with their expiry and renewal time",
		Description: "Every *.crt under " + hostprep.PKIDir + " and the client certificate embedded in each kubeconfig\n" +
			"knode writes, soonest expiry first. Leaf certificates last one year; the agent renews each once a third\n" +
			"of its lifetime is left (RENEWS AT), and restarts only what reads it. CAs are not renewed (RENEWS AT -).\n" +
			"Masters take turns (a master's renewal restarts its etcd and apiserver): time is cut into windows of a\n" +
			"fortieth of the certificates' lifetime (at most 15 min), window i belongs to seat i mod the master count,\n" +
			"and a master starts a renewal only in the first half of its own windows: TURN is when this node starts it\n" +
			"(a worker's and a single master's TURN is the due time).\n" +
			"--json prints a list of {path, subject, issuer, notAfter, daysLeft, renewsAt and renewTurn (leaves only)}.",
		Flags: []cli.Flag{jsonFlag(), dataDirFlag()},
		Action: func(c *cli.Context) error {
			turns := readTurns(datadir.Dir{Root: c.String("data-dir")})
			certs, err := listCerts("/", time.Now(), turns)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if certs == nil {
					certs = []certInfo{}
				}
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(certs)
			}
			fmt.Fprintln(c.App.Writer, turns)
			printCerts(c.App.Writer, certs)
			return nil
		},
	}
}

// certInfo is one certificate on this node.
type certInfo struct {
	Path     string    `json:"path"`
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
	DaysLeft int       `json:"daysLeft"`
	// RenewsAt is when a leaf certificate is due (nil for a CA), and
	// RenewTurn when this node's agent starts its renewal: on a master, its
	// seat's next turn from then (pki.Staggered).
	RenewsAt  *time.Time `json:"renewsAt,omitempty"`
	RenewTurn *time.Time `json:"renewTurn,omitempty"`
}

// renewTurns is this node's place in the masters' renewal turns.
type renewTurns struct {
	Seat    int // roles.Worker (-1) on a worker or when unknown
	Masters int
}

// at is when this node starts the renewal of a leaf due at due, with life
// as its lifetime, as the agent computes it (renewStart): not before now.
func (t renewTurns) at(due, now time.Time, life time.Duration) time.Time {
	if due.Before(now) {
		due = now
	}
	return pki.Staggered(due, t.Seat, t.Masters, pki.RenewWindow(life)).UTC()
}

func (t renewTurns) String() string {
	if t.Seat < 0 || t.Masters <= 1 {
		return "this node renews each certificate when it is due (TURN = RENEWS AT): no other master takes turns with it"
	}
	return fmt.Sprintf("this node is master seat %d of %d: it renews in the first half of its own windows, one in %d (windows of a fortieth of a certificate's lifetime, at most 15 min)",
		t.Seat, t.Masters, t.Masters)
}

// readTurns finds this node's seat and the master count in its data
// directory (the agent's saved state); a node without one renews when due.
func readTurns(dir datadir.Dir) renewTurns {
	t := renewTurns{Seat: roles.Worker}
	var id datadir.Identity
	if dir.ReadJSON(datadir.NodeFile, &id) != nil {
		return t
	}
	st, err := agent.LoadState(dir, nil, nil)
	if err != nil {
		return t
	}
	snap := st.Snapshot()
	if as, ok := snap.Assignments[id.Name]; ok && as.Active() && snap.Cluster != nil {
		t.Seat, t.Masters = as.Seat, snap.Cluster.Cluster.Masters
	}
	return t
}

// kubeconfigPaths are the kubeconfigs knode writes (masters have all of them).
func kubeconfigPaths() []string {
	return []string{hostprep.KubeletKubeconfig, hostprep.KubeProxyKubeconfig, hostprep.AdminKubeconfig, hostprep.SuperAdminKubeconfig,
		path.Join(hostprep.KubernetesDir, manifests.ControllerManagerConf), path.Join(hostprep.KubernetesDir, manifests.SchedulerConf)}
}

// listCerts reads the certificates under root (a prefix for tests: "/" on a
// node), soonest expiry first. Missing files are skipped; unreadable ones are
// an error naming them.
func listCerts(root string, now time.Time, turns renewTurns) ([]certInfo, error) {
	var out []certInfo
	add := func(p string, certPEM []byte) error {
		cert, err := pki.ParseCert(certPEM)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		info := certInfo{Path: p, Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
			NotAfter: cert.NotAfter.UTC(), DaysLeft: int(cert.NotAfter.Sub(now).Hours() / 24)}
		if !cert.IsCA {
			at := pki.RenewAt(cert).UTC()
			turn := turns.at(at, now, cert.NotAfter.Sub(cert.NotBefore))
			info.RenewsAt, info.RenewTurn = &at, &turn
		}
		out = append(out, info)
		return nil
	}
	pkiDir := filepath.Join(root, hostprep.PKIDir)
	err := filepath.WalkDir(pkiDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".crt") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return add("/"+rel, data) // the path on the node, whatever root is
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	for _, kc := range kubeconfigPaths() {
		data, err := os.ReadFile(filepath.Join(root, kc))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		k, err := manifests.ParseKubeconfig(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kc, err)
		}
		if err := add(kc, k.CertPEM); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b certInfo) int { return a.NotAfter.Compare(b.NotAfter) })
	return out, nil
}

func printCerts(w io.Writer, certs []certInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPIRES\tDAYS LEFT\tRENEWS AT\tTURN\tSUBJECT\tPATH")
	for _, c := range certs {
		renews, turn := "-", "-"
		if c.RenewsAt != nil {
			renews = c.RenewsAt.Format(time.RFC3339)
		}
		if c.RenewTurn != nil {
			turn = c.RenewTurn.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.NotAfter.Format(time.RFC3339), c.DaysLeft, renews, turn, c.Subject, c.Path)
	}
	tw.Flush()
}
