package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves positional arguments after the flags, so that
// `knode join <peer> --token T` parses as users write it (urfave/cli v2 stops
// reading flags at the first positional argument). A flag takes the next
// argument as its value when its definition says so (boolean flags do not),
// unless written --flag=value.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 3 || args[1] == "kubectl" || args[1] == "crictl" || args[len(args)-1] == "--generate-bash-completion" {
		return args // the completion flag must stay last
	}
	// The command, and its subcommands as far as they are named
	// (`knode token create --ttl 1h`).
	out := []string{args[0], args[1]}
	flags := append([]cli.Flag{cli.HelpFlag}, app.Flags...)
	cmd := app.Command(args[1])
	rest := args[2:]
	for cmd != nil {
		flags = append(flags, cmd.Flags...)
		if len(rest) == 0 {
			break
		}
		cmd = cmd.Command(rest[0])
		if cmd != nil {
			out, rest = append(out, rest[0]), rest[1:]
		}
	}
	takesValue := valueFlags(flags)
	var pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				out = append(out, rest[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(out, pos...)
}

// valueFlags names (with aliases) the flags that take a value; --help takes
// none. An unknown command yields no flags of its own, so nothing is taken
// as a value and the parser reports it.
func valueFlags(flags []cli.Flag) map[string]bool {
	takes := map[string]bool{}
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		for _, name := range f.Names() {
			takes[name] = !ok || df.TakesValue()
		}
	}
	return takes
}
