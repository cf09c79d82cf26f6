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
		Subcommands: []*cli.Command{imagesImportCommand(), imagesListCommand(), imagesRmCommand()},
	}
}

func imagesImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import image archives into this node's containerd (the cluster sees them within seconds)",
		ArgsUsage: "<file.tar[.gz|.zst]|oci-dir>...",
		Description: "Reads OCI image layouts (a tar, as `docker save` of Docker 25+, `ctr images export`, `skopeo copy\n" +
			"oci-archive:` or `buildah push` write them, or such a directory) and docker-archive tars (`docker save`),\n" +
			"either tar optionally gzip or zstd compressed. Images are named by the archive (RepoTags, or the\n" +
			"org.opencontainers.image.ref.name / io.containerd.image.name annotation, with a full image name).\n" +
			"Every blob is verified before anything is written into containerd's content store, and containerd\n" +
			"checks it again as it commits it: a corrupt archive imports nothing. The image is then unpacked\n" +
			"(a CRI pull through this node's mirror, which fetches nothing). Importing a name again on a master\n" +
			"moves it to the new image on every node.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return config.Usagef("images import needs an archive: knode images import app.tar")
			}
			st, done, err := openImageStore(c)
			if err != nil {
				return err
			}
			defer done()
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
			for _, im := range all {
				if err := hostprep.PullImage(c.Context, im.Ref); err != nil {
					fmt.Fprintf(c.App.ErrWriter, "warning: %v\n(imported; the kubelet's first pull unpacks it: is knode.service running?)\n", err)
				}
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

func imagesRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove images this node imported (the cluster stops pulling them from it)",
		ArgsUsage: "<image>...",
		Description: "Removes the names knode imported on this node and containerd's records of them; containerd's\n" +
			"garbage collector then deletes the blobs no other image uses, before this returns, and the node\n" +
			"stops announcing them within seconds. Nodes that pulled the image keep their copy (the kubelet's\n" +
			"image garbage collection removes it when unused); a pod that is running keeps running. Only what\n" +
			"knode imported here is removed: for an image containerd pulled from a registry use\n" +
			"`knode crictl rmi`. A name that was not imported here fails the whole command, removing nothing.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return config.Usagef("images rm needs an image name: knode images rm app:v1")
			}
			var refs []string
			for _, a := range c.Args().Slice() {
				ref, err := registry.NormalizeRef(a)
				if err != nil {
					return config.Usagef("%v", err)
				}
				refs = append(refs, ref)
			}
			st, done, err := openImageStore(c)
			if err != nil {
				return err
			}
			defer done()
			gone, err := st.Remove(c.Context, refs)
			if errors.Is(err, registry.ErrNotImported) {
				return fmt.Errorf("%w (nothing was removed; `knode images list` shows where each image was imported, `knode crictl rmi` removes a pulled one)", err)
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, gone)
			}
			for _, im := range gone {
				fmt.Fprintf(c.App.Writer, "removed %s %s\n", im.Ref, im.Digest)
			}
			return nil
		},
	}
}

// openImageStore opens this node's image names over its containerd.
func openImageStore(c *cli.Context) (*registry.Store, func(), error) {
	dir := datadir.Dir{Root: c.String("data-dir")}
	if !dir.Initialised() {
		return nil, nil, config.Usagef("--data-dir %s holds no node: run `knode init` or `knode join` first", dir.Root)
	}
	cs, err := registry.DialContainerd(hostprep.ContainerdSocket, registry.CRINamespace)
	if err != nil {
		return nil, nil, err
	}
	st, err := registry.OpenStore(dir.Path(datadir.ImagesDir), cs)
	if err != nil {
		cs.Close()
		return nil, nil, err
	}
	return st, func() { cs.Close() }, nil
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

// imagesOptions run a configured node's image store (over its containerd),
// mirror and peer endpoint with the kubelet's cluster certificates.
func imagesOptions(dir datadir.Dir) *agent.ImagesOptions {
	pki := func(name string) string { return hostprep.PKIDir + "/" + name }
	tls := registry.PeerTLS{
		CA:          pki(manifests.CACert),
		ServingCert: pki(manifests.KubeletServingCert), ServingKey: pki(manifests.KubeletServingKey),
		ClientCert: pki("kubelet-client.crt"), ClientKey: pki("kubelet-client.key"),
	}
	return &agent.ImagesOptions{Store: dir.Path(datadir.ImagesDir), Containerd: hostprep.ContainerdSocket,
		Unpack: hostprep.PullImage, Port: datadir.ImagesPort, TLS: tls}
}
