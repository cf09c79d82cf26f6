package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/assets"
	"knode.dev/knode/datadir"
	"knode.dev/knode/health"
	"knode.dev/knode/hostprep"
)

// hostFlags select and relax hostprep phases on init and join, and choose
// how the outcome is printed.
func hostFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "end with one JSON object on stdout (node, pod subnet, join command on init, the timing table) instead of text"},
		&cli.StringSliceFlag{Name: "skip-phases", Usage: "host phases not to run (see `knode phase list`)"},
		&cli.StringSliceFlag{Name: "ignore-preflight-errors", Usage: "preflight checks to downgrade to warnings, by name, or 'all'"},
	}
}

// payloadSpec describes the payload for hostprep: where it is (or would be)
// staged under dataDir and which images it provides.
func payloadSpec(m assets.Manifest, dataDir string) (hostprep.Payload, hostprep.Images) {
	st := assets.Staged{Dir: dataDir, Manifest: m}
	p := hostprep.Payload{BinDir: st.BinDir(), CNIBinDir: st.CNIBinDir(), ImagesDir: filepath.Join(dataDir, "images")}
	imgs := hostprep.Images{Pause: st.ImageRef("pause"), ControlPlane: st.ImageRef("control-plane"), CoreDNS: st.ImageRef("coredns")}
	for _, img := range m.Images {
		imgs.Archives = append(imgs.Archives, hostprep.ImageArchive{Path: st.ImagePath(img.Name), SHA256: img.SHA256, MasterOnly: img.Name == "control-plane"})
	}
	return p, imgs
}

// kubeletPKIDir holds the kubelet's own serving certificate.
const kubeletPKIDir = "/var/lib/kubelet/pki"

// hostOptions stages the payload (idempotent: a second call writes nothing)
// and opens the real host.
func hostOptions(ctx context.Context, dataDir string, out io.Writer) (*agent.HostOptions, error) {
	st, err := assets.Stage(ctx, dataDir, out)
	if err != nil {
		return nil, err
	}
	h, err := hostprep.NewLinuxHost("/")
	if err != nil {
		return nil, fmt.Errorf("open the host: %w", err)
	}
	p, imgs := payloadSpec(st.Manifest, dataDir)
	return &agent.HostOptions{Host: h, Payload: p, Images: imgs, KnodeBinary: selfPath(), Out: out,
		Health: health.NewProbe(hostprep.KubeletKubeconfig, hostprep.PKIDir, kubeletPKIDir)}, nil
}

// plannedHostChanges lists, phase by phase, what configuring this host would
// change. It only reads the host; a phase that cannot be inspected (as an
// ordinary user, iptables cannot be read) says so instead.
func plannedHostChanges(ctx context.Context, a *agent.Agent, skip, ignore []string) []string {
	m, err := assets.ReadManifest()
	if err != nil && !errors.Is(err, assets.ErrNoPayload) {
		return []string{"read the payload manifest: " + err.Error()}
	}
	p, imgs := payloadSpec(m, a.Dir().Root)
	a.SetHost(&agent.HostOptions{Payload: p, Images: imgs, KnodeBinary: selfPath()})
	spec, err := a.HostSpec(nil)
	if err != nil {
		return []string{err.Error()}
	}
	h, err := hostprep.NewLinuxHost("/")
	if err != nil {
		return []string{"inspect the host: " + err.Error()}
	}
	var lines []string
	for _, ph := range hostprep.Phases() {
		if slices.Contains(skip, ph.Name) {
			lines = append(lines, fmt.Sprintf("[%s] skipped (--skip-phases)", ph.Name))
			continue
		}
		var out bytes.Buffer
		r := &hostprep.Runner{Only: []string{ph.Name}, DryRun: true, IgnorePreflightErrors: append([]string{"root"}, ignore...), Out: &out}
		if _, err := r.Apply(ctx, &spec, h); err != nil {
			lines = append(lines, fmt.Sprintf("[%s] cannot be planned here: %s", ph.Name, oneLine(err)))
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// resetHost reverts the host changes knode made (every phase, newest first);
// it works whatever state the host is in.
func resetHost(c *cli.Context, dir datadir.Dir, p *progress) error {
	if os.Geteuid() != 0 {
		if _, err := os.Stat(dir.Path("hostprep")); err != nil {
			return nil // a --dry-run node: nothing on the host to undo
		}
		return requireRoot("revert host changes")
	}
	h, err := hostprep.NewLinuxHost("/")
	if err != nil {
		return fmt.Errorf("open the host: %w", err)
	}
	p.Step("reverting host changes")
	_, err = hostprep.Reset(c.Context, h, hostprep.ResetOptions{DataDir: dir.Root, KeepData: true, Out: p.Writer()})
	if err != nil {
		p.Fail()
	}
	return err
}

// prefixWriter prefixes each line, so that hostprep's lines read as part of a step.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !p.mid {
			io.WriteString(p.w, p.prefix)
		}
		p.w.Write(line)
		p.mid = !bytes.HasSuffix(line, []byte("\n"))
	}
	return len(b), nil
}

// selfPath is the knode binary for knode.service to run: the launcher that started this
// program (which stages and execs it again), else this executable; for root, only a file
// that only root can change.
func selfPath() string {
	if p := assets.TrustedSource(); p != "" {
		return p
	}
	return hostprep.DefaultKnodeBinary
}
