package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
	"knode.dev/knode/config"
	"knode.dev/knode/hostprep"
)

func kubectlCommand() *cli.Command {
	return &cli.Command{
		Name:            "kubectl",
		Usage:           "run the embedded kubectl (with the admin kubeconfig on masters)",
		ArgsUsage:       "[kubectl arguments...]",
		SkipFlagParsing: true,
		Description: "Every argument goes to kubectl unchanged. Unless KUBECONFIG or --kubeconfig is given, knode uses\n" +
			hostprep.AdminKubeconfig + " when this node has it. The data directory comes from KNODE_DATA_DIR\n" +
			"(default " + config.DefaultDataDir + "); kubectl is staged there on first use.",
		Action: func(c *cli.Context) error {
			args := append([]string{"kubectl"}, c.Args().Slice()...)
			if os.Getenv("KUBECONFIG") == "" && !hasKubeconfigFlag(args) {
				if exists(hostprep.AdminKubeconfig) {
					args = append([]string{"kubectl", "--kubeconfig", hostprep.AdminKubeconfig}, args[1:]...)
				} else if needsServer(args[1:]) && !exists(userKubeconfig()) {
					return errNoKubeconfig
				}
			}
			return execStaged(c.Context, passthroughDataDir(), args, os.Environ())
		},
	}
}

// execStaged replaces this process with the payload's program args[0],
// staged under dataDir on first use.
func execStaged(ctx context.Context, dataDir string, args, env []string) error {
	st, err := assets.Stage(ctx, dataDir, nil)
	if errors.Is(err, assets.ErrNoPayload) {
		return err
	}
	if err != nil {
		return fmt.Errorf("stage %s under %s: %w", args[0], dataDir, err)
	}
	return syscall.Exec(st.Path(args[0]), args, env)
}

// passthroughDataDir is the data directory of a passthrough command (which
// takes no flags of its own): KNODE_DATA_DIR or the default.
func passthroughDataDir() string {
	return cmp.Or(os.Getenv("KNODE_DATA_DIR"), config.DefaultDataDir)
}

// errNoKubeconfig is what kubectl on a worker would otherwise say in three
// lines about localhost:8080.
var errNoKubeconfig = fmt.Errorf("no admin kubeconfig on this node (%s is on masters only): copy it from a master "+
	"(scp MASTER:%s ~/.kube/config) or pass --kubeconfig FILE", hostprep.AdminKubeconfig, hostprep.AdminKubeconfig)

// needsServer reports whether kubectl would contact an apiserver: not for
// help, completion, local config or the client's own version.
func needsServer(args []string) bool {
	if len(args) == 0 {
		return false
	}
	for _, a := range args {
		switch a {
		case "-h", "--help", "help", "completion", "config", "--client", "--client=true", "plugin", "options":
			return false
		}
	}
	return true
}

// userKubeconfig is kubectl's default kubeconfig, ~/.kube/config.
func userKubeconfig() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".kube", "config")
}

func exists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
