package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/hostprep"
	"knode.dev/knode/manifests"
	"knode.dev/knode/registry"
)

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "import container images on one node and pull them from every node, with no registry",
		Description: "Every node runs a registry mirror that containerd asks first for every registry host\n" +
			"(127.0.0.1:" + fmt.Sprint(datadir.ImagesPort) + "): it serves the images this node holds and fetches the others from the\n" +
			"nodes that announce them (mutual TLS with the nodes' cluster certificates, every digest verified).\n" +
			"So an image imported on any node can be pulled on all of them, even with imagePullPolicy: Always\n" +
			"and no route to any registry; what no node holds falls through to the image's own registry.\n" +
			"Archives dropped into " + config.DefaultDataDir + "/" + datadir.ImagesDir + "/" + registry.ImportDir + "/ are imported by the agent at\n" +
			"start and whenever they appear or change.",
		Subcommands: []*cli.Command{imagesImportCommand(), imagesListCommand()},
	}
}

func imagesImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import image archives into this node (the cluster sees them within seconds)",
		ArgsUsage: "<file.tar[.gz|.zst]|oci-dir>...",
		Description: "Reads OCI image layouts (a tar, as `docker save` of Docker 25+, `ctr images export`, `skopeo copy\n" +
			"oci-archive:` or `buildah push` write them, or such a directory) and docker-archive tars (`docker save`),\n" +
			"either tar optionally gzip or zstd compressed. Images are named by the archive (RepoTags, or the\n" +
			"org.opencontainers.image.ref.name / io.containerd.image.name annotation, with a full image name).\n" +
			"Every blob is verified before the image becomes visible: a corrupt archive imports nothing.\n" +
			"Importing a name again moves it to the new image on every node.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return config.Usagef("images import needs an archive: knode images import app.tar")
			}
			dir := datadir.Dir{Root: c.String("data-dir")}
			if !dir.Initialised() {
				return config.Usagef("--data-dir %s holds no node: run `knode init` or `knode join` first", dir.Root)
			}
			st, err := registry.OpenStore(dir.Path(datadir.ImagesDir))
			if err != nil {
				return err
			}
			var all []registry.Image
			for _, p := range c.Args().Slice() {
				imgs, err := st.Import(c.Context, p, time.Now())
				if errors.Is(err, registry.ErrArchive) {
					return fmt.Errorf("%w\n(nothing of it was imported; give an OCI layout or a `docker save` archive)", err)
				}
				if err != nil {
					return err
				}
				all = append(all, imgs...)
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, all)
			}
			for _, im := range all {
				fmt.Fprintf(c.App.Writer, "imported %s %s\n", im.Ref, im.Digest)
			}
			return nil
		},
	}
}

func imagesListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the images the cluster's nodes hold, and which nodes hold them",
		ArgsUsage: " ",
		Flags:     []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			var rep agent.ImagesReport
			if err := callAgent(c, http.MethodGet, "/v1/images", nil, &rep); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rep)
			}
			printImages(c.App.Writer, rep)
			return nil
		},
	}
}

func printImages(w io.Writer, rep agent.ImagesReport) {
	if len(rep.Images) == 0 {
		fmt.Fprintln(w, "no images: import one with `knode images import <archive>`")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tIMPORTED\tNODES\tOLDER ON")
	for _, im := range rep.Images {
		d := strings.TrimPrefix(im.Digest, "sha256:")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Ref, d[:min(12, len(d))], im.Imported.Local().Format(time.DateTime),
			strings.Join(im.Nodes, ","), strings.Join(im.Older, ","))
	}
	tw.Flush()
}

// imagesOptions run a configured node's image store, mirror and peer
// endpoint with the kubelet's cluster certificates.
func imagesOptions(dir datadir.Dir) *agent.ImagesOptions {
	pki := func(name string) string { return hostprep.PKIDir + "/" + name }
	return &agent.ImagesOptions{Store: dir.Path(datadir.ImagesDir), Port: datadir.ImagesPort, TLS: registry.PeerTLS{
		CA:          pki(manifests.CACert),
		ServingCert: pki(manifests.KubeletServingCert), ServingKey: pki(manifests.KubeletServingKey),
		ClientCert: pki("kubelet-client.crt"), ClientKey: pki("kubelet-client.key"),
	}}
}
