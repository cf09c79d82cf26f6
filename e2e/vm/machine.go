package vm

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"knode.dev/knode/e2e/lab"
)

// VM is one machine of the lab: vmI with address 10.213.0.(10+I) on the cluster's network.
type VM struct {
	Name, IP string
	// Front is its address on the second network (10.214.0.(10+I)), which carries its default
	// route, for a VM with two interfaces (Lab.TwoNICs); empty otherwise.
	Front string
	lab   *Lab
}

// Sh runs a shell command line in the VM as root (over ssh) and returns its standard output;
// a non-zero exit is an error carrying the end of its standard error (an *exec.ExitError
// inside, for the exit code).
func (v *VM) Sh(ctx context.Context, script string) (string, error) {
	cmd := v.lab.command(ctx, "ssh", v.Name, script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %.80s: %w: %s", v.Name, script, err, tail(errb.String(), 1500))
	}
	return out.String(), nil
}

// Provision runs provision.sh ROLE (init or join) in the VM from the share, with extra
// knode flags; the output goes to the lab's log.
func (v *VM) Provision(ctx context.Context, role string, flags ...string) error {
	args := append([]string{"ssh", v.Name, ShareMount + "/provision.sh", role, ShareMount}, flags...)
	cmd := v.lab.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = v.lab.Log, v.lab.Log
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: provision.sh %s: %w", v.Name, role, err)
	}
	return nil
}

// Reboot reboots the VM from inside (systemctl reboot) and waits until it answers over ssh.
func (v *VM) Reboot(ctx context.Context) error { return v.lab.run(ctx, "reboot", v.Name) }

// Snapshot is what knode may change on the host: links, addresses, routes, rules and
// iptables (normalised as the container lab does), sysctls, unit files and running units,
// files under /etc, /var/lib, /usr/local and /opt, and mounts. Two snapshots of one VM are
// equal exactly when none of those changed.
func (v *VM) Snapshot(ctx context.Context) (string, error) {
	raw, err := v.lab.output(ctx, "snapshot", v.Name)
	if err != nil {
		return "", err
	}
	return lab.NormaliseNetState(raw), nil
}

// Memory is the VM's qemu process's resident memory on the host, in MiB.
func (v *VM) Memory(ctx context.Context) (int, error) {
	out, err := v.lab.output(ctx, "mem", v.Name)
	if err != nil {
		return 0, err
	}
	var mib int
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "%d", &mib); err != nil {
		return 0, fmt.Errorf("%s: memory: %q: %w", v.Name, out, err)
	}
	return mib, nil
}
