package assets

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Launch is what the launcher tells the knode program it execs, through the environment:
// which binary carries the payload, when the command began, and what staging it did first,
// so that init and join report the staging the launcher did as their own first row.
type Launch struct {
	// Launcher is the path of the launcher binary (LauncherEnv).
	Launcher string
	// Start is when the launcher began.
	Start time.Time
	// StagedDir is the data directory the launcher staged the whole payload into ("" when
	// it extracted only the knode program, as it does for a user other than root).
	StagedDir string
	// Took is how long staging took in the launcher; Written counts the files it wrote
	// (0: the payload was already staged).
	Took    time.Duration
	Written int
}

// The environment variables of a Launch besides LauncherEnv.
const (
	envStart   = "KNODE_LAUNCH_START"
	envStaged  = "KNODE_LAUNCH_STAGED_DIR"
	envTook    = "KNODE_LAUNCH_STAGING_NS"
	envWritten = "KNODE_LAUNCH_STAGING_WRITTEN"
)

var launchEnv = []string{LauncherEnv, envStart, envStaged, envTook, envWritten}

// Environ returns env with l's variables set (any earlier values of them removed).
func (l Launch) Environ(env []string) []string {
	out := withoutLaunch(env)
	return append(out,
		LauncherEnv+"="+l.Launcher,
		envStart+"="+strconv.FormatInt(l.Start.UnixNano(), 10),
		envStaged+"="+l.StagedDir,
		envTook+"="+strconv.FormatInt(int64(l.Took), 10),
		envWritten+"="+strconv.Itoa(l.Written),
	)
}

func withoutLaunch(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(launchEnv, name) {
			out = append(out, kv)
		}
	}
	return out
}

// TakeLaunch reads the Launch the launcher passed and removes its one-time parts (the
// start and the staging figures) from this process's environment, so that a knode this
// process runs later does not report them again; LauncherEnv stays (it names the payload).
// ok is false when no launcher started this process.
func TakeLaunch() (l Launch, ok bool) {
	l.Launcher = os.Getenv(LauncherEnv)
	if l.Launcher == "" {
		return Launch{}, false
	}
	if ns, err := strconv.ParseInt(os.Getenv(envStart), 10, 64); err == nil {
		l.Start = time.Unix(0, ns)
	}
	l.StagedDir = os.Getenv(envStaged)
	if ns, err := strconv.ParseInt(os.Getenv(envTook), 10, 64); err == nil {
		l.Took = time.Duration(ns)
	}
	l.Written, _ = strconv.Atoi(os.Getenv(envWritten))
	for _, v := range launchEnv[1:] {
		os.Unsetenv(v)
	}
	return l, true
}

// StagedInto reports whether the launcher staged the whole payload into dataDir.
func (l Launch) StagedInto(dataDir string) bool {
	if l.StagedDir == "" {
		return false
	}
	a, errA := filepath.Abs(l.StagedDir)
	b, errB := filepath.Abs(dataDir)
	return errA == nil && errB == nil && a == b
}
