// Command knode turns plain Linux machines into a Kubernetes cluster.
//
//	knode init                       on the first machine; prints a join command
//	knode join <peer> --token T      on the others
//	knode status                     membership, roles, pod CIDRs
//	knode reset                      leave the cluster, undo every host change
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/assets"
	"knode.dev/knode/config"
	"knode.dev/knode/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	launch, _ := assets.TakeLaunch()
	code := runLaunched(ctx, launch, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it with their own writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runLaunched(ctx, assets.Launch{}, args, stdout, stderr)
}

// runLaunched is run for a process that the launcher started (see package launch).
func runLaunched(ctx context.Context, launch assets.Launch, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	app.Metadata = map[string]any{launchKey: launch}
	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		return exitOK
	}
	if msg := err.Error(); msg != "" { // cli.Exit("", code) has said everything already
		fmt.Fprintf(stderr, "knode: error: %v\n", msg)
	}
	var ec cli.ExitCoder
	switch {
	case config.IsUsage(err):
		return exitUsage
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return exitError
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "knode",
		Usage:   "turn plain Linux machines into a Kubernetes cluster with one binary",
		Version: version.Version,
		Description: "Run `knode init` on the first machine and the printed `knode join` command on the others.\n" +
			"Nodes find each other by gossip, elect masters, agree on pod subnets and share the cluster CA;\n" +
			"each node then configures its own host. `knode reset` undoes everything knode did.",
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideVersion:            true,
		UseShortOptionHandling: true,
		EnableBashCompletion:   true,
		ExitErrHandler:         func(*cli.Context, error) {}, // run() reports errors
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return config.Usagef("%v (see --help)", err)
		},
		// A first argument that names no command: say so and list them
		// (urfave/cli's default answers "No help topic for ...").
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c.App, c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			initCommand(),
			joinCommand(),
			statusCommand(),
			checkCommand(),
			tokenCommand(),
			imagesCommand(),
			resetCommand(),
			removeCommand(),
			etcdCommand(),
			certsCommand(),
			phaseCommand(),
			kubectlCommand(),
			crictlCommand(),
			agentCommand(),
			shutdownHookCommand(),
			versionCommand(),
			completionCommand(),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
	}
	return app
}

// unknownCommand is the usage error for a command knode does not have.
func unknownCommand(app *cli.App, name string) error {
	var names []string
	for _, c := range app.VisibleCommands() {
		names = append(names, c.Name)
	}
	return config.Usagef("unknown command %q; the commands are: %s (see knode --help)", name, strings.Join(names, ", "))
}
