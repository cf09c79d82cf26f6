package launch

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultDataDir is knode's default --data-dir (config.DefaultDataDir; a test keeps them
// equal without the launcher linking the config package).
const DefaultDataDir = "/var/lib/knode"

// passthrough are the commands whose arguments belong to another program.
var passthrough = []string{"kubectl", "crictl"}

// DataDir returns the data directory a knode command line uses, as its flags do: the value
// of --data-dir (or -data-dir, with = or as the next argument), else $KNODE_DATA_DIR, else
// DefaultDataDir. It stops looking at "--" and at the arguments of kubectl and crictl,
// which read the data directory from the environment only.
func DataDir(args []string, getenv func(string) string) string {
	dir := ""
	command := ""
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" || slices.Contains(passthrough, command) {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "-") && name == "data-dir" && hasValue:
			dir = value
		case strings.HasPrefix(a, "-") && name == "data-dir" && i+1 < len(args):
			dir = args[i+1]
			i++
		case !strings.HasPrefix(a, "-") && command == "":
			command = a
		}
	}
	switch {
	case dir != "":
		return dir
	case getenv("KNODE_DATA_DIR") != "":
		return getenv("KNODE_DATA_DIR")
	}
	return DefaultDataDir
}

// userDir is where a user other than root keeps the knode program:
// $XDG_CACHE_HOME/knode, else $HOME/.cache/knode.
func userDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "knode"), nil
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "knode"), nil
	}
	return "", errors.New("neither XDG_CACHE_HOME nor HOME is an absolute path: set one, so that knode can keep its program in a cache directory of yours (or run it as root)")
}
