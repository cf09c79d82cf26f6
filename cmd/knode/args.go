package main

import "strings"

// boolFlags take no value; every other flag takes the next argument unless
// written --flag=value.
var boolFlags = map[string]bool{
	"dry-run": true, "version": true, "foreground": true, "json": true, "keep-data": true, "help": true, "h": true,
}

// interspersed moves positional arguments after the flags, so that
// `knode join <peer> --token T` parses as users write it (urfave/cli v2 stops
// reading flags at the first positional argument).
func interspersed(args []string) []string {
	if len(args) < 3 || args[1] == "kubectl" {
		return args
	}
	out := []string{args[0], args[1]}
	var pos []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolFlags[name] && i+1 < len(rest) {
				out = append(out, rest[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(out, pos...)
}
