package hostpreptest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"knode.dev/knode/hostprep"
)

type fakeUnit struct {
	active  string
	enabled bool
}

// Systemd records unit states; Reloads counts daemon-reloads and Restarts
// lists every Restart call's unit, in order.
type Systemd struct {
	mu       sync.Mutex
	Units    map[string]*fakeUnit
	Reloads  int
	Restarts []string
	Fail     map[string]error
}

func (f *Systemd) unit(name string) *fakeUnit {
	u, ok := f.Units[name]
	if !ok {
		u = &fakeUnit{active: "inactive"}
		f.Units[name] = u
	}
	return u
}

// DaemonReload implements hostprep.Systemd.
func (f *Systemd) DaemonReload(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reloads++
	return nil
}

// Enable implements hostprep.Systemd.
func (f *Systemd) Enable(ctx context.Context, units ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range units {
		f.unit(u).enabled = true
	}
	return nil
}

// Disable implements hostprep.Systemd.
func (f *Systemd) Disable(ctx context.Context, units ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range units {
		f.unit(u).enabled = false
	}
	return nil
}

// Restart implements hostprep.Systemd.
func (f *Systemd) Restart(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[unit]; err != nil {
		return err
	}
	f.Restarts = append(f.Restarts, unit)
	f.unit(unit).active = "active"
	return nil
}

// Stop implements hostprep.Systemd.
func (f *Systemd) Stop(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unit(unit).active = "inactive"
	return nil
}

// State implements hostprep.Systemd.
func (f *Systemd) State(ctx context.Context, unit string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.Units[unit]
	if !ok {
		return "inactive", false, nil
	}
	return u.active, u.enabled, nil
}

// String lists units that are active or enabled.
func (f *Systemd) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Units) {
		u := f.Units[k]
		if u.active == "inactive" && !u.enabled {
			continue
		}
		fmt.Fprintf(&b, "%s %s enabled=%v\n", k, u.active, u.enabled)
	}
	return b.String()
}

// Commander records the commands it is asked to run.
type Commander struct {
	mu   sync.Mutex
	Runs []string
	Fail map[string]error
	// Effect, when set, is what a successful run does to the host (the
	// files a program writes), keyed by the program's path.
	Effect map[string]func(args []string)
}

// Run implements hostprep.Commander.
func (f *Commander) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Runs = append(f.Runs, strings.Join(append([]string{name}, args...), " "))
	if err := f.Fail[name]; err != nil {
		return []byte(name + ": failed\n"), err
	}
	if do := f.Effect[name]; do != nil {
		do(args)
	}
	return nil, nil
}

// Probe returns fixed facts.
type Probe struct {
	F    hostprep.Facts
	Err  error
	Busy map[int]bool
	// Listening holds the unix sockets that something answers on.
	Listening map[string]bool
	// NotServing lists URLs that Serving reports down; every other is up.
	NotServing map[string]bool
}

// Serving implements hostprep.Probe.
func (f *Probe) Serving(ctx context.Context, url string, caPEM []byte) bool {
	return !f.NotServing[url]
}

// Facts implements hostprep.Probe.
func (f *Probe) Facts(ctx context.Context) (hostprep.Facts, error) { return f.F, f.Err }

// PortInUse implements hostprep.Probe.
func (f *Probe) PortInUse(port int) bool { return f.Busy[port] }

// Answers implements hostprep.Probe.
func (f *Probe) Answers(socket string) bool { return f.Listening[socket] }

// Pods is a container runtime holding pods ("namespace/name", one
// container each): it records restarts, and RemoveAll empties it.
type Pods struct {
	mu        sync.Mutex
	Restarted []string
	// Running are the pods the runtime holds.
	Running []string
	// Down: no runtime answers (RemoveAll fails with ErrNoRuntime).
	Down bool
	// Stopped lists pods ("namespace/name") with no running container:
	// RestartContainers stops none of theirs (a removed static pod).
	Stopped map[string]bool
	// IPs are the addresses of the Running pods that have one (host-network
	// pods have none).
	IPs map[string]netip.Addr
	// ControlPlaneStops lists the pods StopControlPlane stopped, in order.
	ControlPlaneStops []string
}

// RestartContainers implements hostprep.Pods: each pod has one container.
func (f *Pods) RestartContainers(ctx context.Context, namespace, name string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Stopped[namespace+"/"+name] {
		return 0, nil
	}
	f.Restarted = append(f.Restarted, namespace+"/"+name)
	return 1, nil
}

// Snapshot is a copy of Restarted, safe while the fake is in use.
func (f *Pods) Snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Restarted)
}

// RemoveAll implements hostprep.Pods: a sandbox and a container per pod.
func (f *Pods) RemoveAll(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Down {
		return 0, fmt.Errorf("fake runtime: %w", hostprep.ErrNoRuntime)
	}
	n := 2 * len(f.Running)
	f.Running = nil
	return n, nil
}

// RemoveIn implements hostprep.Pods: the running pods with an address in subnet.
func (f *Pods) RemoveIn(ctx context.Context, subnet netip.Prefix) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Down {
		return nil, fmt.Errorf("fake runtime: %w", hostprep.ErrNoRuntime)
	}
	var removed []string
	f.Running = slices.DeleteFunc(f.Running, func(p string) bool {
		ip, ok := f.IPs[p]
		if ok && subnet.Contains(ip) {
			removed = append(removed, p)
			return true
		}
		return false
	})
	return removed, nil
}

// StopControlPlane implements hostprep.Pods: the running kube-system pods
// of the scheduler and controller-manager, then the apiserver's, are
// recorded in ControlPlaneStops.
func (f *Pods) StopControlPlane(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Down {
		return 0, fmt.Errorf("fake runtime: %w", hostprep.ErrNoRuntime)
	}
	n := 0
	for _, prefix := range []string{"kube-system/kube-scheduler-", "kube-system/kube-controller-manager-", "kube-system/kube-apiserver-"} {
		for _, p := range f.Running {
			if strings.HasPrefix(p, prefix) && !f.Stopped[p] {
				f.ControlPlaneStops = append(f.ControlPlaneStops, p)
				n++
			}
		}
	}
	return n, nil
}

// Pods lists the running pods, safe while the fake is in use.
func (f *Pods) Pods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Running)
}
