package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
	"knode.dev/knode/clustercheck"
	"knode.dev/knode/config"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/kubeapi"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check end to end that the cluster works: a pod on each node, pod to pod across nodes, a Service, DNS",
		Description: "Through the apiserver (the admin kubeconfig of a master, or --kubeconfig), in a namespace of its\n" +
			"own (knode-check-XXXXXX): an echo pod on every Ready node (kubectl proxy from the staged binaries),\n" +
			"then one-shot pods that reach the echo pod of the next node, the echo Service by cluster IP and by\n" +
			"its DNS name. Each check is listed with its time; the namespace is deleted at the end, whatever\n" +
			"happened. Exit code 0 when every check passed, 1 when not. --json prints {\"ok\":bool,\"checks\":[...]}.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			&cli.StringFlag{Name: "kubeconfig", Value: hostprep.AdminKubeconfig, Usage: "an admin kubeconfig (with embedded credentials)"},
			&cli.DurationFlag{Name: "timeout", Value: 3 * time.Minute, Usage: "how long pods may take to start and answer"},
		},
		Action: func(c *cli.Context) error {
			kc := c.String("kubeconfig")
			if _, err := os.Stat(kc); err != nil {
				return config.Usagef("no kubeconfig at --kubeconfig %s: run knode check on a master, or copy %s from one and pass --kubeconfig", kc, hostprep.AdminKubeconfig)
			}
			api, err := kubeapi.FromKubeconfig(kc)
			if err != nil {
				return err
			}
			defer api.Close()
			m, err := assets.ReadManifest()
			if err != nil {
				return fmt.Errorf("the check's pods run the payload's images: %w", err)
			}
			_, imgs := payloadSpec(m, c.String("data-dir"))
			res, runErr := clustercheck.Run(c.Context, clustercheck.Options{API: api, Image: imgs.CoreDNS, BinDir: hostprep.PayloadLink,
				Domain: hostprep.DefaultDomain, Timeout: c.Duration("timeout")})
			ok := runErr == nil
			for _, r := range res {
				ok = ok && r.OK
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					OK     bool                  `json:"ok"`
					Checks []clustercheck.Result `json:"checks"`
				}{ok, res}); err != nil {
					return err
				}
			} else {
				printChecks(c.App.Writer, res)
			}
			switch {
			case runErr != nil:
				return runErr
			case !ok:
				return cli.Exit("some checks failed (see above)", exitError)
			}
			return nil
		},
	}
}

func printChecks(w io.Writer, res []clustercheck.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tSECONDS\tDETAIL")
	for _, r := range res {
		word := "ok"
		if !r.OK {
			word = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\n", r.Name, word, r.Seconds, r.Detail)
	}
	tw.Flush()
}
