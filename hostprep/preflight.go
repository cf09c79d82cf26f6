package hostprep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"knode.dev/knode/manifests"
)

// Check is one preflight check. Its errors stop the run unless its name is
// in --ignore-preflight-errors; warnings are only reported.
type Check struct {
	Name string
	Run  func(ctx context.Context, e *Env) (warnings, errs []error)
}

// Checks returns the preflight checks for the spec's node.
func Checks() []Check {
	return []Check{
		{"root", checkRoot},
		{"os", checkOS},
		{"kernel-features", checkKernelFeatures},
		{"cgroups", checkCgroups},
		{"systemd", checkSystemd},
		{"swap", checkSwap},
		{"ports", checkPorts},
		{"clock", checkClock},
		{"container", checkContainer},
		{"existing-runtime", checkExistingRuntime},
		{"pod-range", func(ctx context.Context, e *Env) ([]error, []error) { return nil, one(checkPodRangeFree(e)) }},
	}
}

func one(err error) []error {
	if err == nil {
		return nil
	}
	return []error{err}
}

func preflightPhase() Phase {
	return Phase{
		Name: PhasePreflight,
		Description: "check the host can become a node: root, kernel features, cgroups, systemd, swap, ports, clock, " +
			"no container runtime, kubelet or etcd of another installation; on the first run, record the host's state for reset",
		Plan: runPreflight,
	}
}

// runPreflight runs every check; it plans no change.
func runPreflight(ctx context.Context, e *Env) ([]Change, error) {
	var errs []error
	for _, c := range Checks() {
		warns, fails := c.Run(ctx, e)
		for _, w := range warns {
			fmt.Fprintf(e.Out, "[preflight] WARNING %s: %v\n", c.Name, w)
		}
		for _, f := range fails {
			if e.IgnorePreflight["all"] || e.IgnorePreflight[c.Name] {
				fmt.Fprintf(e.Out, "[preflight] WARNING %s (ignored error): %v\n", c.Name, f)
				continue
			}
			errs = append(errs, fmt.Errorf("[%s] %w", c.Name, f))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("preflight checks failed (--ignore-preflight-errors=NAME,... to go on):\n%w", errors.Join(errs...))
	}
	return planRecordHost(ctx, e)
}

func facts(ctx context.Context, e *Env) (Facts, []error) {
	f, err := e.Facts(ctx)
	if err != nil {
		return f, []error{fmt.Errorf("probe host: %w", err)}
	}
	return f, nil
}

func checkRoot(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && f.EUID != 0 {
		errs = []error{fmt.Errorf("running as uid %d: knode must run as root", f.EUID)}
	}
	return nil, errs
}

func checkOS(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && (f.OS != "linux" || f.Arch != "amd64") {
		errs = []error{fmt.Errorf("%s/%s: the payload is built for linux/amd64", f.OS, f.Arch)}
	}
	return nil, errs
}

func checkKernelFeatures(ctx context.Context, e *Env) ([]error, []error) {
	var errs []error
	for _, m := range requiredModules(e.Spec) {
		if !e.Host.Modules.Available(m) {
			errs = append(errs, fmt.Errorf("kernel feature %s is missing: not built in, not loaded, and no module to load", m))
		}
	}
	if ok, err := e.Host.IPTables.ChainExists("nat", "POSTROUTING"); err != nil || !ok {
		errs = append(errs, fmt.Errorf("netfilter nat table unusable: %v", err))
	}
	return nil, errs
}

func checkCgroups(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && f.CgroupVersion == 1 {
		return []error{errors.New("cgroup v1: the kubelet is configured with failCgroupV1: false; cgroup v2 is preferred")}, nil
	}
	return nil, errs
}

func checkSystemd(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && !f.Systemd {
		errs = []error{errors.New("systemd is not PID 1: knode runs containerd, the kubelet and kube-proxy as systemd units")}
	}
	return nil, errs
}

func checkSwap(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && f.SwapOn {
		return []error{errors.New("swap is on: the kubelet is configured to tolerate it (failSwapOn: false)")}, nil
	}
	return nil, errs
}

// nodePorts returns the TCP ports the node's components will listen on.
func nodePorts(s *Spec) []int {
	ports := []int{10250, 10256, APIEndpointPort}
	if s.Self.Master {
		ports = append(ports, APIServerPort, 2379, 2380, 2381, 10257, 10259)
	}
	return ports
}

func checkPorts(ctx context.Context, e *Env) ([]error, []error) {
	// Once knode's kubelet runs, the ports are the node's own.
	if active, _, err := e.Host.Systemd.State(ctx, "kubelet.service"); err == nil && active == "active" && ownUnit(e, "kubelet.service") {
		return nil, nil
	}
	var busy []string
	for _, p := range nodePorts(e.Spec) {
		if e.Host.Probe.PortInUse(p) {
			busy = append(busy, fmt.Sprint(p))
		}
	}
	if len(busy) > 0 {
		return nil, []error{fmt.Errorf("TCP ports already in use: %s", strings.Join(busy, ", "))}
	}
	return nil, nil
}

func checkClock(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && f.Now.Year() < 2025 {
		errs = []error{fmt.Errorf("the clock says %s: certificates would not verify; set the time first", f.Now.Format("2006-01-02"))}
	}
	return nil, errs
}

func checkContainer(ctx context.Context, e *Env) ([]error, []error) {
	f, errs := facts(ctx, e)
	if errs == nil && f.InContainer {
		return []error{errors.New("this host runs in a container: containerd gets restrict_oom_score_adj and / is made rshared")}, nil
	}
	return nil, errs
}

// ownUnit reports whether knode installed the unit (its file opens with
// manifests.OwnHeader).
func ownUnit(e *Env, unit string) bool {
	b, err := e.Host.Files.ReadFile(path.Join(SystemdUnitDir, unit))
	return err == nil && bytes.HasPrefix(b, []byte(manifests.OwnHeader))
}

// runtimeSockets are the sockets on which another installation's container
// runtime answers, by the unit that would own them.
func runtimeSockets() [][2]string {
	return [][2]string{{"containerd.service", ContainerdSocket}, {"docker.service", "/run/docker.sock"}}
}

// takeOverHint ends every existing-runtime error.
const takeOverHint = "stop and disable it first, or pass --ignore-preflight-errors=existing-runtime to let knode take over " +
	"(knode reset puts its files back and starts it again)"

// checkExistingRuntime refuses a host where another installation's
// container runtime, kubelet or etcd runs: knode would take over its socket,
// configuration and ports. A runtime is seen as a running unit that knode
// did not install, or, started some other way, by its socket answering
// while knode's own unit does not run. Allowed to go on, knode backs up what
// it overwrites and reset puts it back and restarts the service.
func checkExistingRuntime(ctx context.Context, e *Env) ([]error, []error) {
	var errs []error
	running := map[string]bool{}
	for _, u := range foreignUnits() {
		active, _, err := e.Host.Systemd.State(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("state of %s: %w", u, err))
			continue
		}
		running[u] = active == "active"
		if running[u] && !ownUnit(e, u) {
			errs = append(errs, fmt.Errorf("%s is running and is not knode's: %s", u, takeOverHint))
		}
	}
	for _, us := range runtimeSockets() {
		unit, socket := us[0], us[1]
		if running[unit] || ownUnit(e, unit) || !e.Host.Probe.Answers(socket) {
			continue
		}
		errs = append(errs, fmt.Errorf("a container runtime answers on %s, and not as %s: %s", socket, unit, takeOverHint))
	}
	return nil, errs
}
