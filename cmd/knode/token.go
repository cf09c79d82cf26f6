package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"knode.dev/knode/agent"
	"knode.dev/knode/config"
	"knode.dev/knode/datadir"
	"knode.dev/knode/gossip"
	"knode.dev/knode/pki"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "print the join token made by init; create, list and delete join tokens",
		Description: "A join token admits a machine once: `knode join` proves it to a member and receives the cluster's\n" +
			"own gossip key, so a token can expire (24 h by default) or be deleted without affecting nodes that\n" +
			"joined with it. Tokens are created and deleted on a master; every member admits with any valid one.\n" +
			"Without a subcommand: the token `knode init` printed, if it is still valid (for scripts:\n" +
			"`knode join <peer> --token $(knode token)`).",
		Flags: []cli.Flag{dataDirFlag(), &cli.BoolFlag{Name: "master", Usage: "init's master token (it takes a free master seat)"}},
		Action: func(c *cli.Context) error {
			dir := datadir.Dir{Root: c.String("data-dir")}
			file := datadir.TokenFile
			if c.Bool("master") {
				file = datadir.MasterTokenFile
			}
			b, err := dir.ReadFile(file)
			if errors.Is(err, fs.ErrNotExist) || !dir.Initialised() {
				return fmt.Errorf("no init token in %s: run `knode init` first, or `knode token create` on a master to make one", dir.Root)
			}
			if err != nil {
				return err
			}
			tok, err := pki.ParseToken(string(b))
			if err != nil {
				return fmt.Errorf("%s: %w", dir.Path(file), err)
			}
			infos, err := listTokens(c)
			if err != nil {
				return err
			}
			id := tok.ID()
			for _, ti := range infos {
				if ti.ID == fmt.Sprintf("%x", id[:]) && ti.State != "valid" {
					return fmt.Errorf("the token made by init is %s: make a new one with `knode token create`", ti.State)
				}
			}
			fmt.Fprintln(c.App.Writer, tok)
			return nil
		},
		Subcommands: []*cli.Command{tokenCreateCommand(), tokenListCommand(), tokenDeleteCommand(), rotateGossipKeyCommand()},
	}
}

// ttlText says how long a token lasts.
func ttlText(ttl time.Duration) string {
	if ttl == 0 {
		return "ever (no expiry)"
	}
	return ttl.String()
}

// tokenTTLFlag is --ttl (token create) or --token-ttl (init).
func tokenTTLFlag(name, usage string) cli.Flag {
	return &cli.DurationFlag{Name: name, Value: agent.DefaultTokenTTL, Usage: usage}
}

// tokenTTL reads and checks a token lifetime flag.
func tokenTTL(c *cli.Context, name string) (time.Duration, error) {
	ttl := c.Duration(name)
	if ttl < 0 || (ttl > 0 && ttl < time.Minute) {
		return 0, config.Usagef("--%s %s: want at least 1m (a joiner needs time to use it), or 0 for a token that never expires", name, ttl)
	}
	return ttl, nil
}

func tokenCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "make a new join token (on a master) and print it",
		ArgsUsage: " ",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			tokenTTLFlag("ttl", "how long the token admits machines (0: no expiry)"),
			&cli.StringFlag{Name: "description", Usage: "a note shown by `knode token list`"},
			&cli.BoolFlag{Name: "print-join-command", Usage: "print the whole `knode join` command, not the token alone"},
			&cli.BoolFlag{Name: "master", Usage: "a master token: the machine joining with it takes a free master seat and receives the CA key"},
			&cli.UintFlag{Name: "uses", Usage: "how many machines the token may admit (0: any number until it expires); a holder of the token cannot make more nodes than this"},
		},
		Action: func(c *cli.Context) error {
			ttl, err := tokenTTL(c, "ttl")
			if err != nil {
				return err
			}
			desc := c.String("description")
			if len(desc) > 256 || strings.ContainsFunc(desc, func(r rune) bool { return r < ' ' }) {
				return config.Usagef("--description: at most 256 printable characters")
			}
			uses := c.Uint("uses")
			if uses > gossip.MaxTokenUses {
				return config.Usagef("--uses %d: want at most %d (0: no limit)", uses, gossip.MaxTokenUses)
			}
			var nt agent.NewToken
			req := agent.TokenRequest{TTL: ttl, Description: desc, Master: c.Bool("master"), Uses: uint32(uses)}
			if err := callAgent(c, http.MethodPost, "/v1/tokens", req, &nt); err != nil {
				return err
			}
			switch {
			case c.Bool("json"):
				return printJSON(c.App.Writer, nt)
			case c.Bool("print-join-command"):
				st, err := agent.QueryStatus(c.Context, datadir.Dir{Root: c.String("data-dir")}.Socket())
				if err != nil {
					return err
				}
				addr := "<this-node>:7946"
				for _, m := range st.Members {
					if m.Name == st.Self {
						addr = m.Address
					}
				}
				fmt.Fprintf(c.App.Writer, "knode join %s --token %s\n", addr, nt.Token)
			default:
				fmt.Fprintln(c.App.Writer, nt.Token)
			}
			return nil
		},
	}
}

func tokenListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the join tokens the cluster knows (IDs, never secrets)",
		ArgsUsage: " ",
		Flags:     []cli.Flag{dataDirFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			infos, err := listTokens(c)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, infos)
			}
			printTokens(c.App.Writer, infos, time.Now())
			return nil
		},
	}
}

func tokenDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "withdraw join tokens by ID (on a master); nodes that joined with them stay",
		ArgsUsage: "<id>...",
		Flags:     []cli.Flag{dataDirFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return config.Usagef("token delete needs the ID of a token (see `knode token list`)")
			}
			for _, id := range c.Args().Slice() {
				if err := callAgent(c, http.MethodDelete, "/v1/tokens/"+id, nil, nil); err != nil {
					if errors.Is(err, agent.ErrNoToken) {
						return config.Usagef("%v", err)
					}
					return err
				}
				fmt.Fprintf(c.App.Writer, "token %s deleted\n", id)
			}
			return nil
		},
	}
}

func rotateGossipKeyCommand() *cli.Command {
	return &cli.Command{
		Name:      "rotate-gossip-key",
		Usage:     "replace the cluster's gossip key with a new one, with no downtime (on a master)",
		ArgsUsage: " ",
		Description: "Makes a new key and takes every node through three steps, each confirmed by every node before the\n" +
			"next: install it beside the old key, send with it, drop the old key. Gossip keeps flowing throughout.\n" +
			"A node that is down cannot take the new key: the rotation stops before anything changes for it,\n" +
			"unless --force, after which such a node must be reset and join again with a token. Use it after\n" +
			"removing a node you no longer trust: its copy of the old key stops opening the cluster's gossip.",
		Flags: []cli.Flag{dataDirFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "force", Usage: "go on without the nodes that do not confirm (they must rejoin)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "how long to wait for every node's confirmations"},
		},
		Action: func(c *cli.Context) error {
			timeout := c.Duration("timeout")
			if timeout < time.Second || timeout > 10*time.Minute {
				return config.Usagef("--timeout %s: want between 1s and 10m", timeout)
			}
			ctx, cancel := context.WithTimeout(c.Context, timeout+10*time.Second)
			defer cancel()
			var rep agent.RotateReport
			err := agent.Call(ctx, datadir.Dir{Root: c.String("data-dir")}.Socket(), http.MethodPost, "/v1/gossip-key/rotate",
				agent.RotateRequest{Force: c.Bool("force"), Timeout: timeout}, &rep)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rep)
			}
			fmt.Fprintf(c.App.Writer, "gossip key rotated on %d node(s); the old key is dropped\n", rep.Nodes)
			if len(rep.Missing) > 0 {
				fmt.Fprintf(c.App.Writer, "left out (reset them and join again): %s\n", strings.Join(rep.Missing, ", "))
			}
			return nil
		},
	}
}

func listTokens(c *cli.Context) ([]agent.TokenInfo, error) {
	var infos []agent.TokenInfo
	err := callAgent(c, http.MethodGet, "/v1/tokens", nil, &infos)
	return infos, err
}

func callAgent(c *cli.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	return agent.Call(ctx, datadir.Dir{Root: c.String("data-dir")}.Socket(), method, path, in, out)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTokens(w io.Writer, infos []agent.TokenInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tUSES\tEXPIRES\tCREATED BY\tDESCRIPTION")
	for _, ti := range infos {
		exp := "never"
		if ti.Expires != nil {
			exp = ti.Expires.Format(time.RFC3339)
			if d := ti.Expires.Sub(now); d > 0 {
				exp += fmt.Sprintf(" (in %s)", d.Round(time.Minute))
			}
		}
		kind := "worker"
		if ti.Master {
			kind = "master"
		}
		uses := strconv.Itoa(ti.Used)
		if ti.Uses > 0 {
			uses += "/" + strconv.FormatUint(uint64(ti.Uses), 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ti.ID, kind, ti.State, uses, exp, ti.By, ti.Description)
	}
	tw.Flush()
}

// readTokenFile reads a token from a file (the first line), for --token-file.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", config.Usagef("--token-file: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}
