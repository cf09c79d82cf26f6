package hostprep

import (
	"bytes"
	"context"
	"fmt"
	"path"
)

func imagesPhase() Phase {
	return Phase{
		Name:        PhaseImages,
		Description: "import the payload's image tarballs into containerd (namespace k8s.io) and link the staged binaries at " + PayloadLink + " for the pods that run them",
		Plan: func(ctx context.Context, e *Env) ([]Change, error) {
			cs, err := planImages(ctx, e)
			if err != nil {
				return nil, err
			}
			return append(planPayloadLink(e), cs...), nil
		},
		PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
			cs := planRemove(e, e.Spec.statePath("images.imported"))
			if _, err := e.Host.Files.Readlink(PayloadLink); err == nil {
				cs = append(cs, planRemove(e, PayloadLink)...)
				cs = append(cs, change("remove "+path.Dir(PayloadLink)+" if empty", func(context.Context) error {
					e.Host.Files.Remove(path.Dir(PayloadLink)) // fails harmlessly when not empty
					return nil
				}))
			}
			return cs, nil
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

// planPayloadLink points PayloadLink at this node's staged binaries.
func planPayloadLink(e *Env) []Change {
	target := e.Spec.Payload.BinDir
	if cur, err := e.Host.Files.Readlink(PayloadLink); err == nil && cur == target {
		return nil
	}
	return []Change{change("link "+PayloadLink+" -> "+target, func(context.Context) error {
		return e.Host.Files.Symlink(target, PayloadLink)
	})}
}
