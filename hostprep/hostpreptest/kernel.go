package hostpreptest

import (
	"fmt"
	"strings"
	"sync"

	"knode.dev/knode/hostprep"
)

// Sysctl holds kernel parameters in a map; a missing name is an error.
type Sysctl struct {
	mu     sync.Mutex
	Values map[string]string
	Fail   map[string]error
}

// Get implements hostprep.Sysctl.
func (f *Sysctl) Get(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.Values[name]
	if !ok {
		return "", fmt.Errorf("sysctl %s: %w", name, hostprep.ErrNotExist)
	}
	return v, nil
}

// Set implements hostprep.Sysctl.
func (f *Sysctl) Set(name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	if _, ok := f.Values[name]; !ok {
		return fmt.Errorf("sysctl %s: %w", name, hostprep.ErrNotExist)
	}
	f.Values[name] = value
	return nil
}

// String renders "name = value" lines.
func (f *Sysctl) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, k := range sortedKeys(f.Values) {
		fmt.Fprintf(&b, "%s = %s\n", k, f.Values[k])
	}
	return b.String()
}

// Modules tracks loaded kernel modules. Loading br_netfilter makes its
// sysctls appear in Sysctl, as on a real kernel.
type Modules struct {
	mu   sync.Mutex
	Have map[string]bool
	// Missing features can be neither found nor loaded.
	Missing map[string]bool
	// Sysctl, when set, gains the net.bridge.* parameters on br_netfilter load.
	Sysctl *Sysctl
}

// Loaded implements hostprep.Modules.
func (f *Modules) Loaded(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Have[name]
}

// Available implements hostprep.Modules.
func (f *Modules) Available(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Have[name] || !f.Missing[name]
}

// Load implements hostprep.Modules.
func (f *Modules) Load(name string) error {
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
func (f *Modules) String() string {
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
