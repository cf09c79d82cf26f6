// Package lab drives knode's end-to-end lab from Go: node containers (privileged, systemd as
// PID 1) on an internal docker network, run by a dockerd of the lab's own.
//
// The lifecycle (dependencies, dockerd, node image, network, nodes, teardown) lives in one
// place, lab.sh beside this file, so that `make lab` and the Go tests share it; this package
// calls it and adds per-node helpers (exec, IP, stop/start, network-state snapshots, memory).
//
// Everything is configured by the environment variables lab.sh documents (KNODE_E2E_STATE,
// KNODE_E2E_DOCKER_HOST, KNODE_E2E_PREFIX, KNODE_E2E_NET, KNODE_E2E_SUBNET, ...); New reads
// the ones this package needs with the same defaults.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Lab is a handle on the lab's docker daemon and node containers. It holds no state beyond
// its configuration: every call asks docker, so a Lab can be made again at any time.
type Lab struct {
	// Script is the path of lab.sh.
	Script string
	// Docker is the docker CLI used (Debian's /usr/bin/docker when present).
	Docker string
	// DockerHost is the DOCKER_HOST of the lab's daemon.
	DockerHost string
	// Prefix names the nodes: Prefix-1 ... Prefix-N.
	Prefix string
	// Net is the docker network of the nodes; Subnet its /24.
	Net, Subnet string
	// Log receives the output of lab.sh and progress lines.
	Log io.Writer
}

// New returns a Lab configured from the environment; log receives lab.sh's output
// (os.Stderr when nil).
func New(log io.Writer) (*Lab, error) {
	if log == nil {
		log = os.Stderr
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return nil, errors.New("lab: cannot locate lab.sh (no caller information)")
	}
	script := filepath.Join(filepath.Dir(self), "lab.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	state := env("KNODE_E2E_STATE", "/var/lib/knode-e2e")
	docker := "docker"
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		docker = "/usr/bin/docker"
	}
	return &Lab{
		Script:     script,
		Docker:     docker,
		DockerHost: env("KNODE_E2E_DOCKER_HOST", "unix://"+state+"/docker.sock"),
		Prefix:     env("KNODE_E2E_PREFIX", "knode-e2e"),
		Net:        env("KNODE_E2E_NET", "knode-e2e"),
		Subnet:     env("KNODE_E2E_SUBNET", "172.30.77.0/24"),
		Log:        log,
	}, nil
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Run runs `lab.sh ARGS...`, streaming its output to l.Log.
func (l *Lab) Run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, l.Script, args...)
	cmd.Stdout, cmd.Stderr = l.Log, l.Log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("lab.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Prepare installs what is missing (docker.io, debootstrap, jq), starts the lab's dockerd
// unless KNODE_E2E_DOCKER_HOST names one, and builds the node image unless it is cached.
func (l *Lab) Prepare(ctx context.Context) error { return l.Run(ctx, "prepare") }

// Teardown removes every node, volume, the network and its iptables rule, stops the dockerd
// the lab started and restores the host's firewall state. It reports a changed host as an
// error.
func (l *Lab) Teardown(ctx context.Context) error { return l.Run(ctx, "down") }

// Up starts n fresh nodes (removing any earlier ones of this prefix), waits until systemd runs
// in each and, when knodeBin is not empty, copies it to /usr/local/bin/knode in each.
func (l *Lab) Up(ctx context.Context, n int, knodeBin string) ([]*Node, error) {
	if err := l.Down(ctx); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, l.Script, "nodes-up", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "KNODE_BIN="+knodeBin)
	cmd.Stdout, cmd.Stderr = l.Log, l.Log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("start %d nodes: %w", n, err)
	}
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = l.Node(i + 1)
	}
	return nodes, nil
}

// Down removes the nodes, their volumes, the network and its iptables rule; dockerd stays.
func (l *Lab) Down(ctx context.Context) error { return l.Run(ctx, "nodes-down") }

// Node returns the handle of node i (1-based), whether it runs or not.
func (l *Lab) Node(i int) *Node {
	base := strings.TrimSuffix(l.Subnet, ".0/24")
	return &Node{Name: fmt.Sprintf("%s-%d", l.Prefix, i), IP: fmt.Sprintf("%s.%d", base, 10+i), lab: l}
}

// DockerCmd runs the docker CLI against the lab's daemon and returns its combined output.
func (l *Lab) DockerCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.Docker, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+l.DockerHost)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return out.String(), nil
}

// Leftovers lists what of the lab still exists in docker: containers, volumes and networks
// labelled with this prefix. Empty means a clean teardown (or no daemon at all).
func (l *Lab) Leftovers(ctx context.Context) ([]string, error) {
	if _, err := l.DockerCmd(ctx, "info", "--format", "{{.ID}}"); err != nil {
		return nil, nil // no daemon, nothing of ours in it
	}
	label := "label=dev.knode.e2e=" + l.Prefix
	var left []string
	for _, q := range [][]string{
		{"ps", "-a", "--filter", label, "--format", "container {{.Names}}"},
		{"volume", "ls", "--filter", label, "--format", "volume {{.Name}}"},
		{"network", "ls", "--filter", label, "--format", "network {{.Name}}"},
	} {
		out, err := l.DockerCmd(ctx, q...)
		if err != nil {
			return nil, err
		}
		left = append(left, strings.Fields(strings.ReplaceAll(out, " ", "="))...)
	}
	return left, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
