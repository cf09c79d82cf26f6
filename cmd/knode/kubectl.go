package main

import (
	"errors"
	"fmt"
	"os"
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
			dataDir := os.Getenv("KNODE_DATA_DIR")
			if dataDir == "" {
				dataDir = config.DefaultDataDir
			}
			st, err := assets.Stage(c.Context, dataDir, nil)
			if errors.Is(err, assets.ErrNoPayload) {
				return err
			}
			if err != nil {
				return fmt.Errorf("stage kubectl under %s: %w", dataDir, err)
			}
			bin := st.Path("kubectl")
			args := append([]string{"kubectl"}, c.Args().Slice()...)
			if os.Getenv("KUBECONFIG") == "" && !hasKubeconfigFlag(args) {
				if _, err := os.Stat(hostprep.AdminKubeconfig); err == nil {
					args = append([]string{"kubectl", "--kubeconfig", hostprep.AdminKubeconfig}, args[1:]...)
				}
			}
			return syscall.Exec(bin, args, os.Environ())
		},
	}
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
