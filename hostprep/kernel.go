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
	return cs, nil
}

// setSysctlSaving records the parameter's current value, unless one is
// already recorded, then sets it; reset restores the recorded values.
func setSysctlSaving(e *Env, s sysctlSetting) error {
	old, err := e.Host.Sysctl.Get(s.Name)
	if err != nil {
		return fmt.Errorf("read sysctl %s: %w", s.Name, err)
	}
	saved, err := savedSysctls(e)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(saved, func(x sysctlSetting) bool { return x.Name == s.Name }) {
		saved = append(saved, sysctlSetting{s.Name, old})
		var b bytes.Buffer
		for _, x := range saved {
			fmt.Fprintf(&b, "%s=%s\n", x.Name, x.Value)
		}
		p := e.Spec.statePath("sysctl.orig")
		if err := e.Host.Files.WriteFile(p, b.Bytes(), 0o600); err != nil {
			return fmt.Errorf("save sysctl %s: write %s: %w", s.Name, p, err)
		}
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
