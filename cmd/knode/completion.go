package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/config"
)

// Shell completion: the scripts ask knode itself for the words that fit
// (urfave/cli's --generate-bash-completion), so they follow every command
// and flag without being regenerated.

const bashCompletion = `# knode completion for bash: source <(knode completion bash)
_knode() {
  local cur="${COMP_WORDS[COMP_CWORD]}" words
  if [[ "$cur" == -* ]]; then
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _knode knode
`

const zshCompletion = `#compdef knode
# knode completion for zsh (after compinit): source <(knode completion zsh)
_knode() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _knode knode
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		Description: "bash: source <(knode completion bash)   (or save it in /etc/bash_completion.d/knode)\n" +
			"zsh:  source <(knode completion zsh)    (in ~/.zshrc, after compinit)\n" +
			"Commands and flags complete; the scripts ask knode itself, so they never go stale.",
		Action: func(c *cli.Context) error {
			switch shell := c.Args().First(); shell {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, zshCompletion)
				return err
			default:
				return config.Usagef("knode completion %q: name a shell, bash or zsh", shell)
			}
		},
	}
}
