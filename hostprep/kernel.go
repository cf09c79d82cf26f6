package hostprep

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
)

// sysctlSetting is one kernel parameter and its value.
type sysctlSetting struct{ Name, Value string }

// kernelSysctls are the parameters the kernel phase sets. They are all per
// network namespace, so the phase can be tested inside one. (The kubelet sets
// the vm.* and kernel.* ones it needs itself.)
func kernelSysctls() []sysctlSetting {
	return []sysctlSetting{
		{"net.ipv4.ip_forward", "1"},
		{"net.bridge.bridge-nf-call-iptables", "1"},
		{"net.bridge.bridge-nf-call-ip6tables", "1"},
	}
}

// kubeletSysctls are the host-global parameters the kubelet sets itself when
// it starts (its kernel tunables: vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...). knode records their values before the kubelet
// first runs, so that reset puts them back: on a real host (the VM lab) a
// reset left them as the kubelet had set them. In the container lab they are
// shadowed files and never change.
func kubeletSysctls() []string {
	return []string{"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
		"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes"}
}

// requiredModules lists the kernel modules a node needs for s.
func requiredModules(s *Spec) []string {
	mods := []string{"overlay", "br_netfilter"}
	if s.Cluster.Network != Routed {
		mods = append(mods, "vxlan")
	}
	return mods
}

func kernelPhase() Phase {
	return Phase{
		Name:        PhaseKernel,
		Description: "load kernel modules and set sysctls, persisted in files knode owns",
		Plan:        planKernel,
		PlanReset:   planKernelReset,
	}
}

func planKernel(ctx context.Context, e *Env) ([]Change, error) {
	var cs []Change
	mods := requiredModules(e.Spec)
	for _, m := range mods {
		if e.Host.Modules.Loaded(m) {
			continue
		}
		if !e.Host.Modules.Available(m) {
			return nil, fmt.Errorf("kernel feature %s is missing: not built in, not loaded, and no module to load", m)
		}
		cs = append(cs, change("load kernel module "+m, func(context.Context) error {
			if err := e.Host.Modules.Load(m); err != nil {
				return fmt.Errorf("load kernel module %s: %w", m, err)
			}
			return nil
		}))
	}
	c, err := planFile(e, ModulesConfPath, []byte("# Written by knode; removed by knode reset.\n"+strings.Join(mods, "\n")+"\n"), 0o644)
	if err != nil {
		return nil, err
	}
	cs = append(cs, c...)
	var conf strings.Builder
	conf.WriteString("# Written by knode; removed by knode reset.\n")
	for _, s := range kernelSysctls() {
		fmt.Fprintf(&conf, "%s = %s\n", s.Name, s.Value)
	}
	if c, err = planFile(e, SysctlConfPath, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	cs = append(cs, c...)
	for _, s := range kernelSysctls() {
		// A parameter missing now (its module not loaded yet) is set anyway.
		if v, err := e.Host.Sysctl.Get(s.Name); err == nil && v == s.Value {
			continue
		}
		cs = append(cs, change(fmt.Sprintf("set sysctl %s=%s", s.Name, s.Value), func(context.Context) error {
			return setSysctlSaving(e, s)
		}))
	}
	saved, err := savedSysctls(e)
	if err != nil {
		return nil, err
	}
	for _, name := range kubeletSysctls() {
		if slices.ContainsFunc(saved, func(x sysctlSetting) bool { return x.Name == name }) {
			continue
		}
		if _, err := e.Host.Sysctl.Get(name); err != nil {
			continue // not on this kernel: nothing to put back
		}
		cs = append(cs, change("record sysctl "+name+" (the kubelet sets it; reset restores it)", func(context.Context) error {
			return saveSysctl(e, name)
		}))
	}
	return cs, nil
}

// saveSysctl records the parameter's current value, unless one is already
// recorded; reset restores the recorded values.
func saveSysctl(e *Env, name string) error {
	old, err := e.Host.Sysctl.Get(name)
	if err != nil {
		return fmt.Errorf("read sysctl %s: %w", name, err)
	}
	saved, err := savedSysctls(e)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(saved, func(x sysctlSetting) bool { return x.Name == name }) {
		return nil
	}
	saved = append(saved, sysctlSetting{name, old})
	var b bytes.Buffer
	for _, x := range saved {
		fmt.Fprintf(&b, "%s=%s\n", x.Name, x.Value)
	}
	p := e.Spec.statePath("sysctl.orig")
	if err := e.Host.Files.WriteFile(p, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save sysctl %s: write %s: %w", name, p, err)
	}
	return nil
}

// setSysctlSaving records the parameter's current value, unless one is
// already recorded, then sets it; reset restores the recorded values.
func setSysctlSaving(e *Env, s sysctlSetting) error {
	if err := saveSysctl(e, s.Name); err != nil {
		return err
	}
	if err := e.Host.Sysctl.Set(s.Name, s.Value); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", s.Name, s.Value, err)
	}
	return nil
}

// savedSysctls reads the values recorded before knode changed them.
func savedSysctls(e *Env) ([]sysctlSetting, error) {
	p := e.Spec.statePath("sysctl.orig")
	data, err := e.Host.Files.ReadFile(p)
	if notExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var out []sysctlSetting
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "=")
		if ok {
			out = append(out, sysctlSetting{name, value})
		}
	}
	return out, nil
}

func planKernelReset(ctx context.Context, e *Env) ([]Change, error) {
	saved, err := savedSysctls(e)
	if err != nil {
		return nil, err
	}
	var cs []Change
	for _, s := range saved {
		if v, err := e.Host.Sysctl.Get(s.Name); err == nil && v == s.Value {
			continue
		}
		cs = append(cs, change(fmt.Sprintf("restore sysctl %s=%s", s.Name, s.Value), func(context.Context) error {
			if err := e.Host.Sysctl.Set(s.Name, s.Value); err != nil {
				return fmt.Errorf("restore sysctl %s=%s: %w", s.Name, s.Value, err)
			}
			return nil
		}))
	}
	// Modules stay loaded: something else may use them by now.
	return append(cs, planRemove(e, SysctlConfPath, ModulesConfPath, e.Spec.statePath("sysctl.orig"))...), nil
}
