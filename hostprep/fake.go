package hostprep

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fake is a host made of fakes, for tests here and in packages that call
// hostprep. String renders the whole host as text.
type Fake struct {
	Net      *FakeNetlink
	IPTables *FakeIPTables
	Sysctl   *FakeSysctl
	Modules  *FakeModules
	Files    *FakeFiles
	Systemd  *FakeSystemd
	Exec     *FakeCommander
	Probe    *FakeProbe
}

// NewFake returns a plain host: lo only, empty built-in iptables chains,
// forwarding off, every kernel feature available but none loaded, no files,
// systemd running, root, amd64, cgroup v2, not in a container.
func NewFake() *Fake {
	return &Fake{
		Net:      NewFakeNetlink(),
		IPTables: NewFakeIPTables(),
		Sysctl: &FakeSysctl{Values: map[string]string{
			"net.ipv4.ip_forward": "0",
		}},
		Modules: &FakeModules{Have: map[string]bool{}, Missing: map[string]bool{}},
		Files:   &FakeFiles{Data: map[string]fakeFile{}},
		Systemd: &FakeSystemd{Units: map[string]*fakeUnit{}},
		Exec:    &FakeCommander{},
		Probe: &FakeProbe{F: Facts{OS: "linux", Arch: "amd64", CgroupVersion: 2, Systemd: true,
			Now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, Busy: map[int]bool{}},
	}
}

// Host returns the Host view of the fakes.
func (f *Fake) Host() *Host {
	return &Host{Net: f.Net, IPTables: f.IPTables, Sysctl: f.Sysctl, Modules: f.Modules,
		Files: f.Files, Systemd: f.Systemd, Exec: f.Exec, Probe: f.Probe}
}

// String renders every part of the host, in sections.
func (f *Fake) String() string {
	return "## net\n" + f.Net.String() + "## iptables\n" + f.IPTables.String() +
		"## sysctl\n" + f.Sysctl.String() + "## modules\n" + f.Modules.String() +
		"## files\n" + f.Files.String() + "## systemd\n" + f.Systemd.String()
}

// FakeIPTables is an in-memory IPTables; rules are stored as their joined
// arguments.
type FakeIPTables struct {
	mu     sync.Mutex
	tables map[string]map[string][]string
	Fail   map[string]error
}

// NewFakeIPTables returns nat and filter with their empty built-in chains.
func NewFakeIPTables() *FakeIPTables {
	return &FakeIPTables{tables: map[string]map[string][]string{
		"nat":    {"PREROUTING": nil, "INPUT": nil, "OUTPUT": nil, "POSTROUTING": nil},
		"filter": {"INPUT": nil, "FORWARD": nil, "OUTPUT": nil},
	}, Fail: map[string]error{}}
}

func builtinChain(c string) bool { return strings.ToUpper(c) == c && !strings.Contains(c, "-") }

func (f *FakeIPTables) chain(table, chain string) ([]string, error) {
	t, ok := f.tables[table]
	if !ok {
		return nil, fmt.Errorf("table %s: %w", table, ErrNotExist)
	}
	r, ok := t[chain]
	if !ok {
		return nil, fmt.Errorf("chain %s/%s: %w", table, chain, ErrNotExist)
	}
	return r, nil
}

// ListChains implements IPTables.
func (f *FakeIPTables) ListChains(table string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c := range f.tables[table] {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// ChainExists implements IPTables.
func (f *FakeIPTables) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.chain(table, chain)
	return err == nil, nil
}

// NewChain implements IPTables.
func (f *FakeIPTables) NewChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["NewChain"]; err != nil {
		return err
	}
	if _, err := f.chain(table, chain); err == nil {
		return fmt.Errorf("chain %s/%s already exists", table, chain)
	}
	f.tables[table][chain] = []string{}
	return nil
}

// ClearChain implements IPTables.
func (f *FakeIPTables) ClearChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.chain(table, chain); err != nil {
		return err
	}
	f.tables[table][chain] = []string{}
	return nil
}

// DeleteChain implements IPTables; a chain still jumped to cannot go.
func (f *FakeIPTables) DeleteChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.chain(table, chain); err != nil {
		return err
	}
	for _, rules := range f.tables[table] {
		for _, r := range rules {
			if strings.HasSuffix(r, "-j "+chain) {
				return fmt.Errorf("chain %s/%s is still referenced", table, chain)
			}
		}
	}
	delete(f.tables[table], chain)
	return nil
}

// Rules implements IPTables.
func (f *FakeIPTables) Rules(table, chain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	var out []string
	for _, x := range r {
		out = append(out, "-A "+chain+" "+x)
	}
	return out, err
}

// Exists implements IPTables.
func (f *FakeIPTables) Exists(table, chain string, rule ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	if err != nil {
		return false, err
	}
	return slices.Contains(r, strings.Join(rule, " ")), nil
}

// Append implements IPTables.
func (f *FakeIPTables) Append(table, chain string, rule ...string) error {
	return f.Insert(table, chain, -1, rule...)
}

// Insert implements IPTables; pos is 1-based, -1 appends.
func (f *FakeIPTables) Insert(table, chain string, pos int, rule ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail["Insert"]; err != nil {
		return err
	}
	r, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	s := strings.Join(rule, " ")
	if pos < 0 || pos > len(r) {
		r = append(r, s)
	} else {
		r = slices.Insert(r, pos-1, s)
	}
	f.tables[table][chain] = r
	return nil
}

// Delete implements IPTables.
func (f *FakeIPTables) Delete(table, chain string, rule ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	i := slices.Index(r, strings.Join(rule, " "))
	if i < 0 {
		return fmt.Errorf("rule in %s/%s: %w", table, chain, ErrNotExist)
	}
	f.tables[table][chain] = slices.Delete(r, i, i+1)
	return nil
}

// String renders the tables as iptables-save would, without counters.
func (f *FakeIPTables) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, t := range sortedKeys(f.tables) {
		fmt.Fprintf(&b, "*%s\n", t)
		chains := sortedKeys(f.tables[t])
		for _, c := range chains {
			policy := "-"
			if builtinChain(c) {
				policy = "ACCEPT"
			}
			fmt.Fprintf(&b, ":%s %s\n", c, policy)
		}
		for _, c := range chains {
			for _, r := range f.tables[t][c] {
				fmt.Fprintf(&b, "-A %s %s\n", c, r)
			}
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// FakeSysctl holds kernel parameters in a map; a missing name is an error.
type FakeSysctl struct {
	mu     sync.Mutex
	Values map[string]string
	Fail   map[string]error
}

// Get implements Sysctl.
func (f *FakeSysctl) Get(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.Values[name]
	if !ok {
		return "", fmt.Errorf("sysctl %s: %w", name, ErrNotExist)
	}
	return v, nil
}

// Set implements Sysctl.
func (f *FakeSysctl) Set(name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	if _, ok := f.Values[name]; !ok {
		return fmt.Errorf("sysctl %s: %w", name, ErrNotExist)
	}
	f.Values[name] = value
	return nil
}

// String renders "name = value" lines.
func (f *FakeSysctl) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Values) {
		fmt.Fprintf(&b, "%s = %s\n", k, f.Values[k])
	}
	return b.String()
}

// FakeModules tracks loaded kernel modules. Loading br_netfilter makes its
// sysctls appear in Sysctl, as on a real kernel.
type FakeModules struct {
	mu   sync.Mutex
	Have map[string]bool
	// Missing features can be neither found nor loaded.
	Missing map[string]bool
	// Sysctl, when set, gains the net.bridge.* parameters on br_netfilter load.
	Sysctl *FakeSysctl
}

// Loaded implements Modules.
func (f *FakeModules) Loaded(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Have[name]
}

// Available implements Modules.
func (f *FakeModules) Available(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Have[name] || !f.Missing[name]
}

// Load implements Modules.
func (f *FakeModules) Load(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Missing[name] {
		return fmt.Errorf("module %s not found in directory /lib/modules/fake", name)
	}
	f.Have[name] = true
	if name == "br_netfilter" && f.Sysctl != nil {
		f.Sysctl.mu.Lock()
		for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
			if _, ok := f.Sysctl.Values[k]; !ok {
				f.Sysctl.Values[k] = "0"
			}
		}
		f.Sysctl.mu.Unlock()
	}
	return nil
}

// String lists loaded modules.
func (f *FakeModules) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Have) {
		if f.Have[k] {
			b.WriteString(k + "\n")
		}
	}
	return b.String()
}

type fakeFile struct {
	data []byte
	perm fs.FileMode
}

// FakeFiles is an in-memory filesystem of regular files; directories exist
// implicitly while they hold files.
type FakeFiles struct {
	mu   sync.Mutex
	Data map[string]fakeFile
	Fail map[string]error
}

// ReadFile implements Files.
func (f *FakeFiles) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, ok := f.Data[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	}
	return slices.Clone(x.data), nil
}

// WriteFile implements Files.
func (f *FakeFiles) WriteFile(name string, data []byte, perm fs.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	f.Data[name] = fakeFile{slices.Clone(data), perm}
	return nil
}

// Remove implements Files.
func (f *FakeFiles) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Data, name)
	return nil
}

// RemoveAll implements Files.
func (f *FakeFiles) RemoveAll(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.Data {
		if k == name || strings.HasPrefix(k, strings.TrimSuffix(name, "/")+"/") {
			delete(f.Data, k)
		}
	}
	return nil
}

// Exists implements Files.
func (f *FakeFiles) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.Data {
		if k == name || strings.HasPrefix(k, strings.TrimSuffix(name, "/")+"/") {
			return true
		}
	}
	return false
}

// String lists files with their mode (contents vary with fresh keys, so
// tests compare the ones that matter separately).
func (f *FakeFiles) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Data) {
		fmt.Fprintf(&b, "%s %v\n", k, f.Data[k].perm)
	}
	return b.String()
}

type fakeUnit struct {
	active  string
	enabled bool
}

// FakeSystemd records unit states; Reloads counts daemon-reloads.
type FakeSystemd struct {
	mu      sync.Mutex
	Units   map[string]*fakeUnit
	Reloads int
	Fail    map[string]error
}

func (f *FakeSystemd) unit(name string) *fakeUnit {
	u, ok := f.Units[name]
	if !ok {
		u = &fakeUnit{active: "inactive"}
		f.Units[name] = u
	}
	return u
}

// DaemonReload implements Systemd.
func (f *FakeSystemd) DaemonReload(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reloads++
	return nil
}

// Enable implements Systemd.
func (f *FakeSystemd) Enable(ctx context.Context, units ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range units {
		f.unit(u).enabled = true
	}
	return nil
}

// Disable implements Systemd.
func (f *FakeSystemd) Disable(ctx context.Context, units ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range units {
		f.unit(u).enabled = false
	}
	return nil
}

// Restart implements Systemd.
func (f *FakeSystemd) Restart(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[unit]; err != nil {
		return err
	}
	f.unit(unit).active = "active"
	return nil
}

// Stop implements Systemd.
func (f *FakeSystemd) Stop(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unit(unit).active = "inactive"
	return nil
}

// State implements Systemd.
func (f *FakeSystemd) State(ctx context.Context, unit string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.Units[unit]
	if !ok {
		return "inactive", false, nil
	}
	return u.active, u.enabled, nil
}

// String lists units that are active or enabled.
func (f *FakeSystemd) String() string {
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

// FakeCommander records the commands it is asked to run.
type FakeCommander struct {
	mu   sync.Mutex
	Runs []string
	Fail map[string]error
}

// Run implements Commander.
func (f *FakeCommander) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Runs = append(f.Runs, strings.Join(append([]string{name}, args...), " "))
	return nil, f.Fail[name]
}

// FakeProbe returns fixed facts.
type FakeProbe struct {
	F    Facts
	Err  error
	Busy map[int]bool
}

// Facts implements Probe.
func (f *FakeProbe) Facts(ctx context.Context) (Facts, error) { return f.F, f.Err }

// PortInUse implements Probe.
func (f *FakeProbe) PortInUse(port int) bool { return f.Busy[port] }
