package assets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"knode.dev/knode/release/appended"
)

// LauncherEnv names the environment variable through which the launcher (the release's
// bin/knode, which carries the payload) tells the knode program it execs where it is: the
// program reads the payload from that file and names it in knode.service.
const LauncherEnv = "KNODE_LAUNCHER"

// Source is the file holding this process's payload: the launcher that started it
// ($KNODE_LAUNCHER), else this executable (the launcher itself, or a knode built without a
// payload). It is "" only when neither is known.
func Source() string {
	if p := os.Getenv(LauncherEnv); p != "" {
		return p
	}
	p, _ := os.Executable()
	return p
}

// TrustedSource is Source when this user may rely on it: for root, a file only root can
// change (CheckRootBinary); otherwise "".
func TrustedSource() string {
	src := Source()
	if src == "" || (os.Geteuid() == 0 && CheckRootBinary(src) != nil) {
		return ""
	}
	return src
}

// open opens the payload appended to Source.
func open() (*appended.FS, error) {
	src := Source()
	if src == "" {
		return nil, ErrNoPayload
	}
	if os.Geteuid() == 0 {
		if err := CheckRootBinary(src); err != nil {
			return nil, err
		}
	}
	return OpenAppended(src)
}

// OpenAppended opens the payload appended to the binary at path: ErrNoPayload (wrapped)
// when it carries none, ErrCorrupt (wrapped) when its index does not describe it.
func OpenAppended(path string) (*appended.FS, error) {
	a, err := appended.Open(path)
	switch {
	case errors.Is(err, appended.ErrNone):
		return nil, fmt.Errorf("%w (%s)", ErrNoPayload, path)
	case errors.Is(err, appended.ErrCorrupt):
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return a, err
}

// ReadManifest returns the payload's manifest, or ErrNoPayload.
func ReadManifest() (Manifest, error) {
	a, err := open()
	if err != nil {
		return Manifest{}, err
	}
	defer a.Close()
	m, _, err := readManifest(a)
	return m, err
}

// Stage stages the payload under dataDir (see the package documentation for the layout),
// writing one progress line per staged item to progress (which may be nil). It returns
// ErrNoPayload when knode was built without a payload.
func Stage(ctx context.Context, dataDir string, progress io.Writer) (Staged, error) {
	a, err := open()
	if err != nil {
		return Staged{}, err
	}
	defer a.Close()
	return StageFS(ctx, a, dataDir, progress)
}
