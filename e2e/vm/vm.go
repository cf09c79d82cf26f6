// Package vm drives knode's VM lab from Go: QEMU VMs booting a Debian 12 image (the
// distribution kernel, systemd, cgroup v2) on a bridge inside a network namespace of the lab's
// own, under KVM when the host has an ordinary one and TCG otherwise.
//
// The lifecycle (dependencies, image, namespace, VMs, teardown) lives in one place, vm.sh
// beside this file, so that `make vm-lab` and the Go tests share it; the machines are made
// nodes by provision.sh, the script vagrant/Vagrantfile runs too. This package calls vm.sh and
// adds per-VM helpers. Everything is configured by the environment variables vm.sh documents
// (KNODE_VM_WORK, KNODE_VM_ACCEL, ...).
package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ShareMount is where each VM mounts the lab's share (9p): the knode binary, provision.sh and
// the JSON outcomes of init and join.
const ShareMount = "/mnt/knode-lab"

// Lab is a handle on the VM lab. It holds no state beyond its configuration: vm.sh keeps the
// VMs' PIDs in the work directory, so a Lab can be made again at any time.
type Lab struct {
	// Script is the path of vm.sh; Provision the provisioning script it copies into the share.
	Script, Provision string
	// Work is the work directory (KNODE_VM_WORK): share/, run/, logs/.
	Work string
	// Log receives vm.sh's output and progress lines.
	Log io.Writer
	// TwoNICs are the VMs (1-based) Up gives a second interface on a second network that
	// carries their default route (KNODE_VM_TWO_NICS); nil keeps the environment's.
	TwoNICs []int
}

// New returns a Lab configured from the environment; log receives vm.sh's output (os.Stderr
// when nil).
func New(log io.Writer) (*Lab, error) {
	if log == nil {
		log = os.Stderr
	}
	dir, err := sourceDir()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "vm.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("vm lab: %w", err)
	}
	work := os.Getenv("KNODE_VM_WORK")
	if work == "" {
		work = filepath.Join(dir, "..", "_work", "vm")
	}
	return &Lab{Script: script, Provision: filepath.Join(dir, "provision.sh"), Work: work, Log: log}, nil
}

func sourceDir() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("vm lab: cannot locate vm.sh (no caller information)")
	}
	return filepath.Dir(self), nil
}

// Share is the host side of the VMs' share.
func (l *Lab) Share() string { return filepath.Join(l.Work, "share") }

// command is vm.sh ARGS with the lab's environment.
func (l *Lab) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.Script, args...)
	if l.TwoNICs != nil {
		nics := make([]string, len(l.TwoNICs))
		for i, n := range l.TwoNICs {
			nics[i] = fmt.Sprint(n)
		}
		cmd.Env = append(os.Environ(), "KNODE_VM_TWO_NICS="+strings.Join(nics, " "))
	}
	return cmd
}

// run runs vm.sh ARGS, its output to l.Log.
func (l *Lab) run(ctx context.Context, args ...string) error {
	cmd := l.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = l.Log, l.Log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("vm.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// output runs vm.sh ARGS and returns its standard output.
func (l *Lab) output(ctx context.Context, args ...string) (string, error) {
	cmd := l.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("vm.sh %s: %w: %s", strings.Join(args, " "), err, tail(errb.String(), 1500))
	}
	return out.String(), nil
}

// Accel is the accelerator the VMs run under: "kvm" or "tcg".
func (l *Lab) Accel(ctx context.Context) (string, error) {
	out, err := l.output(ctx, "accel")
	return strings.TrimSpace(out), err
}

// Up boots VMs vm1..vmN with bin copied into the share (and provision.sh beside it), and
// waits until each answers over ssh.
func (l *Lab) Up(ctx context.Context, n int, bin string) ([]*VM, error) {
	if err := os.MkdirAll(l.Share(), 0o755); err != nil {
		return nil, fmt.Errorf("vm lab share: %w", err)
	}
	for _, f := range []struct{ src, dst string }{{bin, "knode"}, {l.Provision, "provision.sh"}} {
		if err := copyFile(f.src, filepath.Join(l.Share(), f.dst)); err != nil {
			return nil, err
		}
	}
	for _, old := range []string{"join-command", "init.json"} {
		_ = os.Remove(filepath.Join(l.Share(), old))
	}
	if err := l.run(ctx, "up", fmt.Sprint(n)); err != nil {
		return nil, err
	}
	vms := make([]*VM, n)
	for i := range vms {
		name := fmt.Sprintf("vm%d", i+1)
		ip, err := l.output(ctx, "ip", name)
		if err != nil {
			return nil, err
		}
		front, err := l.output(ctx, "front-ip", name)
		if err != nil {
			return nil, err
		}
		vms[i] = &VM{Name: name, IP: strings.TrimSpace(ip), Front: strings.TrimSpace(front), lab: l}
	}
	return vms, nil
}

// Down stops every VM (journals and consoles kept in the work directory) and removes the
// namespace with its bridge and taps.
func (l *Lab) Down(ctx context.Context) error { return l.run(ctx, "down") }

// Outcome is the JSON `knode init --json` or `knode join --json` printed (provision.sh keeps
// it in the share): knode's own timing table.
type Outcome struct {
	Node    string  `json:"node"`
	Master  bool    `json:"master"`
	PodCIDR string  `json:"podCIDR"`
	Seconds float64 `json:"seconds"`
	Timings []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
		At      float64 `json:"at"`
	} `json:"timings"`
}

// Outcome reads the share's init.json (name "init") or join-VM.json (name "join-vm2").
func (l *Lab) Outcome(name string) (Outcome, error) {
	var o Outcome
	b, err := os.ReadFile(filepath.Join(l.Share(), name+".json"))
	if err != nil {
		return o, fmt.Errorf("outcome of %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("outcome of %s: %w: %.300s", name, err, b)
	}
	return o, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s into the VM share: %w", src, err)
	}
	if err := os.WriteFile(dst+".tmp", b, 0o755); err != nil {
		return fmt.Errorf("copy %s into the VM share: %w", src, err)
	}
	return os.Rename(dst+".tmp", dst)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
