package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Node is one node container of the lab.
type Node struct {
	// Name is the container name, also the node's hostname (Prefix-i).
	Name string
	// IP is the node's address on the lab network.
	IP  string
	lab *Lab
}

// Exec runs a command in the node and returns its combined output; a non-zero exit is an
// error that carries the end of the output.
func (n *Node) Exec(ctx context.Context, args ...string) (string, error) {
	return n.ExecInput(ctx, nil, args...)
}

// ExecInput is Exec with stdin (nil for none).
func (n *Node) ExecInput(ctx context.Context, stdin []byte, args ...string) (string, error) {
	dargs := []string{"exec"}
	if stdin != nil {
		dargs = append(dargs, "-i")
	}
	cmd := exec.CommandContext(ctx, n.lab.Docker, append(append(dargs, n.Name), args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+n.lab.DockerHost)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %s: %w: %s", n.Name, strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return out.String(), nil
}

// Sh runs a shell command line in the node (sh -c).
func (n *Node) Sh(ctx context.Context, script string) (string, error) {
	return n.Exec(ctx, "sh", "-c", script)
}

// CopyIn copies a host file into the node.
func (n *Node) CopyIn(ctx context.Context, src, dst string) error {
	_, err := n.lab.DockerCmd(ctx, "cp", src, n.Name+":"+dst)
	return err
}

// Stop stops the node container (systemd gets SIGRTMIN+3 and shuts down cleanly).
func (n *Node) Stop(ctx context.Context) error {
	_, err := n.lab.DockerCmd(ctx, "stop", "-t", "30", n.Name)
	return err
}

// Kill stops the node container at once (SIGKILL: no shutdown, its address vanishes from
// the network as a crashed or unplugged machine's does).
func (n *Node) Kill(ctx context.Context) error {
	_, err := n.lab.DockerCmd(ctx, "kill", n.Name)
	return err
}

// Start starts a stopped node and waits until its systemd is running.
func (n *Node) Start(ctx context.Context) error {
	if _, err := n.lab.DockerCmd(ctx, "start", n.Name); err != nil {
		return err
	}
	return n.WaitSystemd(ctx)
}

// Restart restarts the node container and waits until its systemd is running.
func (n *Node) Restart(ctx context.Context) error {
	if _, err := n.lab.DockerCmd(ctx, "restart", "-t", "30", n.Name); err != nil {
		return err
	}
	return n.WaitSystemd(ctx)
}

// WaitSystemd waits until `systemctl is-system-running` says running; degraded is an error
// naming the failed units.
func (n *Node) WaitSystemd(ctx context.Context) error {
	var state string
	// Right after a (re)start systemd may not answer on its bus yet: ask again.
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		out, _ := n.Exec(ctx, "timeout", "120", "systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(out)
		if state == "running" {
			return nil
		}
		if !strings.Contains(state, "bus") && state != "" && state != "offline" {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	failed, _ := n.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
	return fmt.Errorf("%s: systemd is %q; failed units: %s", n.Name, state, strings.TrimSpace(failed))
}

// Running reports whether the container runs.
func (n *Node) Running(ctx context.Context) bool {
	out, err := n.lab.DockerCmd(ctx, "inspect", "-f", "{{.State.Running}}", n.Name)
	return err == nil && strings.TrimSpace(out) == "true"
}

// NetState returns the node's network state (links, addresses, routes of every table, rules,
// iptables and ip6tables of both backends) normalised by NormaliseNetState, so that two
// snapshots are equal exactly when the state is.
func (n *Node) NetState(ctx context.Context) (string, error) {
	raw, err := n.lab.snapshot(ctx, n.Name)
	if err != nil {
		return "", err
	}
	return NormaliseNetState(raw), nil
}

func (l *Lab) snapshot(ctx context.Context, name string) (string, error) {
	cmd := exec.CommandContext(ctx, l.Script, "snapshot", name)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("snapshot %s: %w: %s", name, err, tail(errb.String(), 1000))
	}
	return out.String(), nil
}

// Memory is the host's memory accounting of a node container (cgroup v1 memory controller).
type Memory struct {
	// Usage is memory.usage_in_bytes: everything charged to the container, page cache included.
	Usage int64
	// RSS, Cache and InactiveFile are the total_* lines of memory.stat.
	RSS, Cache, InactiveFile int64
}

// WorkingSet is Usage less inactive file pages, the figure the kubelet and `docker stats` use.
func (m Memory) WorkingSet() int64 { return m.Usage - m.InactiveFile }

func (m Memory) String() string {
	return fmt.Sprintf("working set %d MiB (usage %d, rss %d, cache %d MiB)",
		m.WorkingSet()>>20, m.Usage>>20, m.RSS>>20, m.Cache>>20)
}

// Memory reads the node container's memory charge from the host's cgroup.
func (n *Node) Memory(ctx context.Context) (Memory, error) {
	id, err := n.lab.DockerCmd(ctx, "inspect", "-f", "{{.Id}}", n.Name)
	if err != nil {
		return Memory{}, err
	}
	dir := filepath.Join("/sys/fs/cgroup/memory/docker", strings.TrimSpace(id))
	var m Memory
	b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return m, fmt.Errorf("%s memory: %w", n.Name, err)
	}
	if m.Usage, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
		return m, fmt.Errorf("%s memory: %w", n.Name, err)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return m, fmt.Errorf("%s memory: %w", n.Name, err)
	}
	for _, line := range strings.Split(string(stat), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "total_rss":
			m.RSS = x
		case "total_cache":
			m.Cache = x
		case "total_inactive_file":
			m.InactiveFile = x
		}
	}
	return m, nil
}
