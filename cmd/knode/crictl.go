package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/config"
	"knode.dev/knode/hostprep"
)

func crictlCommand() *cli.Command {
	endpoint := "unix://" + hostprep.ContainerdSocket
	return &cli.Command{
		Name:            "crictl",
		Usage:           "run the embedded crictl against this node's containerd (works while the apiserver is down)",
		ArgsUsage:       "[crictl arguments...]",
		SkipFlagParsing: true,
		Description: "Every argument goes to crictl (cri-tools) unchanged: `knode crictl ps`, `knode crictl logs ID`,\n" +
			"`knode crictl pods`. Unless CONTAINER_RUNTIME_ENDPOINT / IMAGE_SERVICE_ENDPOINT or the flags say\n" +
			"otherwise, it talks to " + endpoint + ". The data directory comes from KNODE_DATA_DIR\n" +
			"(default " + config.DefaultDataDir + "); crictl is staged there on first use. Needs root (the socket is root's).",
		Action: func(c *cli.Context) error {
			env := os.Environ()
			for _, v := range []string{"CONTAINER_RUNTIME_ENDPOINT", "IMAGE_SERVICE_ENDPOINT"} {
				if os.Getenv(v) == "" {
					env = append(env, v+"="+endpoint)
				}
			}
			return execStaged(c.Context, passthroughDataDir(), append([]string{"crictl"}, c.Args().Slice()...), env)
		},
	}
}
