// Package launch is the release's bin/knode: a small program that carries the payload
// (the knode program itself among the pinned components, appended after the launcher's
// last byte, see assets.AppendPayload), makes sure it is staged, and execs the staged knode
// program with the same arguments and environment, plus the assets.Launch variables that
// say where the payload is and what staging this run did.
//
// Where it stages:
//   - as root: the whole payload, into the data directory the command will use (its
//     --data-dir, else $KNODE_DATA_DIR, else /var/lib/knode), the layout assets.Stage
//     documents; the knode program is bin/knode there. `knode reset` removes it with the
//     data directory; the next run stages again.
//   - as any other user: only the knode program, into $XDG_CACHE_HOME/knode (default
//     ~/.cache/knode; its stamp names the payload, so a new build replaces it), because such
//     a user never runs the components (a --dry-run agent, status, version, help); `knode
//     kubectl` stages what it needs itself, as before.
//
// Either way the first run decodes the stream and checks every file it decodes against
// the manifest's sha256 before a stamp naming the payload is written; later runs find the
// stamp and the files' sizes and exec after a few stats.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"knode.dev/knode/assets"
	"knode.dev/knode/release"
)

// Env is what Run reads of the process: its own binary, arguments, environment and user.
type Env struct {
	// Self is the launcher's path (os.Executable).
	Self string
	Args []string
	// Environ is the environment, as os.Environ.
	Environ []string
	Euid    int
	// Stderr receives the one line a first staging prints.
	Stderr io.Writer
}

func (e Env) getenv(name string) string {
	for i := len(e.Environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e.Environ[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// Prepare stages what this run needs (see the package documentation) and returns the knode
// program to exec and the environment to exec it with.
func Prepare(ctx context.Context, e Env) (path string, environ []string, err error) {
	start := time.Now()
	if e.Euid == 0 {
		if err := assets.CheckRootBinary(e.Self); err != nil {
			return "", nil, err
		}
	}
	payload, err := assets.OpenAppended(e.Self)
	if errors.Is(err, assets.ErrNoPayload) {
		return "", nil, fmt.Errorf("%s carries no payload: build bin/knode with `make` (the launcher alone cannot run knode)", e.Self)
	}
	if err != nil {
		return "", nil, err
	}
	defer payload.Close()
	l := assets.Launch{Launcher: e.Self, Start: start}
	if e.Euid == 0 {
		path, err = stageAll(ctx, e, payload, &l)
	} else {
		path, err = extractProgram(ctx, e, payload, &l)
	}
	if err != nil {
		return "", nil, err
	}
	l.Took = time.Since(start)
	if l.Written > 0 && e.Stderr != nil {
		fmt.Fprintf(e.Stderr, "knode: first run of this build: staged %d file(s) to %s in %s\n",
			l.Written, filepath.Dir(path), l.Took.Round(time.Millisecond))
	}
	return path, l.Environ(e.Environ), nil
}

// stageAll stages the whole payload into the data directory of root's command line and
// returns its knode program.
func stageAll(ctx context.Context, e Env, payload fs.FS, l *assets.Launch) (string, error) {
	dir := DataDir(e.Args, e.getenv)
	st, err := assets.StageFS(ctx, payload, dir, nil)
	if err != nil {
		return "", fmt.Errorf("stage the payload into %s: %w", dir, err)
	}
	l.StagedDir, l.Written = dir, st.Written
	path := st.Path(release.KnodeProgram)
	if path == "" {
		return "", fmt.Errorf("%w: the payload has no %s program", assets.ErrCorrupt, release.KnodeProgram)
	}
	return path, nil
}

// extractProgram extracts only the knode program, into the user's cache.
func extractProgram(ctx context.Context, e Env, payload fs.FS, l *assets.Launch) (string, error) {
	dir, err := userDir(e.getenv)
	if err != nil {
		return "", err
	}
	path, written, err := assets.ExtractFS(ctx, payload, dir, release.KnodeProgram)
	if err != nil {
		return "", fmt.Errorf("extract the knode program into %s: %w", dir, err)
	}
	if written {
		l.Written = 1
	}
	return path, nil
}

// Run prepares and execs the knode program; it returns only on failure.
func Run(ctx context.Context, e Env) error {
	path, environ, err := Prepare(ctx, e)
	if err != nil {
		return err
	}
	if err := syscall.Exec(path, e.Args, environ); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil // unreachable: Exec does not return on success
}
