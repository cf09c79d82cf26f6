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

	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/pki"
)

func certsCommand() *cli.Command {
	return &cli.Command{
		Name:  "certs",
		Usage: "list this node's certificates (PKI files and kubeconfigs) with their expiry and renewal time",
		Description: "Every *.crt under " + hostprep.PKIDir + " and the client certificate embedded in each kubeconfig\n" +
			"knode writes, soonest expiry first. Leaf certificates last one year; the agent renews each once a third\n" +
			"of its lifetime is left (RENEWS AT), and restarts only what reads it. CAs are not renewed (RENEWS AT -).\n" +
			"--json prints a list of {path, subject, issuer, notAfter, daysLeft, renewsAt (leaves only)}.",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			certs, err := listCerts("/", time.Now())
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
	// RenewsAt is when the agent renews a leaf certificate (nil for a CA).
	RenewsAt *time.Time `json:"renewsAt,omitempty"`
}

// kubeconfigPaths are the kubeconfigs knode writes (masters have all of them).
func kubeconfigPaths() []string {
	return []string{hostprep.KubeletKubeconfig, hostprep.KubeProxyKubeconfig, hostprep.AdminKubeconfig, hostprep.SuperAdminKubeconfig,
		path.Join(hostprep.KubernetesDir, manifests.ControllerManagerConf), path.Join(hostprep.KubernetesDir, manifests.SchedulerConf)}
}

// listCerts reads the certificates under root (a prefix for tests: "/" on a
// node), soonest expiry first. Missing files are skipped; unreadable ones are
// an error naming them.
func listCerts(root string, now time.Time) ([]certInfo, error) {
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
			info.RenewsAt = &at
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
	fmt.Fprintln(tw, "EXPIRES\tDAYS LEFT\tRENEWS AT\tSUBJECT\tPATH")
	for _, c := range certs {
		renews := "-"
		if c.RenewsAt != nil {
			renews = c.RenewsAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", c.NotAfter.Format(time.RFC3339), c.DaysLeft, renews, c.Subject, c.Path)
	}
	tw.Flush()
}
