package hostprep

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
)

func imagesPhase() Phase {
	return Phase{
		Name:        PhaseImages,
		Description: "import the payload's image tarballs into containerd (namespace k8s.io)",
		Plan:        planImages,
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			return planRemove(e, e.Spec.statePath("images.imported")), nil
		},
	}
}

// planImages imports each archive this node runs whose digest is not yet
// recorded as imported; containerd must be running when the change applies
// (the containerd phase starts it). A worker that becomes a master imports
// the control plane in the same run that writes its static pods.
func planImages(ctx context.Context, e *Env) ([]Change, error) {
	marker := e.Spec.statePath("images.imported")
	done, err := e.Host.Files.ReadFile(marker)
	if err != nil && !notExist(err) {
		return nil, fmt.Errorf("read %s: %w", marker, err)
	}
	ctr := path.Join(e.Spec.Payload.BinDir, "ctr")
	var cs []Change
	for _, a := range e.Spec.Images.Archives {
		if a.SHA256 == "" {
			return nil, fmt.Errorf("image archive %s: no sha256", a.Path)
		}
		if bytes.Contains(done, []byte(a.SHA256+"\n")) || a.MasterOnly && !e.Spec.Self.Master {
			continue
		}
		cs = append(cs, change("import image archive "+a.Path, func(ctx context.Context) error {
			if _, err := e.Host.Exec.Run(ctx, ctr, "--address", ContainerdSocket, "-n", "k8s.io", "images", "import", a.Path); err != nil {
				return fmt.Errorf("import %s: %w", a.Path, err)
			}
			old, _ := e.Host.Files.ReadFile(marker)
			return e.Host.Files.WriteFile(marker, append(old, a.SHA256+"\n"...), 0o644)
		}))
	}
	return cs, nil
}

func splitLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
