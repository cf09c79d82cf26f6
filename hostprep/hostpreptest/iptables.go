package hostpreptest

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"knode.dev/knode/hostprep"
)

// IPTables is an in-memory IPTables; rules are stored as their joined
// arguments.
type IPTables struct {
	mu     sync.Mutex
	tables map[string]map[string][]string
	Fail   map[string]error
}

// NewIPTables returns nat and filter with their empty built-in chains.
func NewIPTables() *IPTables {
	return &IPTables{tables: map[string]map[string][]string{
		"nat":    {"PREROUTING": nil, "INPUT": nil, "OUTPUT": nil, "POSTROUTING": nil},
		"filter": {"INPUT": nil, "FORWARD": nil, "OUTPUT": nil},
	}, Fail: map[string]error{}}
}

func builtinChain(c string) bool { return strings.ToUpper(c) == c && !strings.Contains(c, "-") }

func (f *IPTables) chain(table, chain string) ([]string, error) {
	t, ok := f.tables[table]
	if !ok {
		return nil, fmt.Errorf("table %s: %w", table, hostprep.ErrNotExist)
	}
	r, ok := t[chain]
	if !ok {
		return nil, fmt.Errorf("chain %s/%s: %w", table, chain, hostprep.ErrNotExist)
	}
	return r, nil
}

// ListChains implements hostprep.IPTables.
func (f *IPTables) ListChains(table string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c := range f.tables[table] {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// ChainExists implements hostprep.IPTables.
func (f *IPTables) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.chain(table, chain)
	return err == nil, nil
}

// NewChain implements hostprep.IPTables.
func (f *IPTables) NewChain(table, chain string) error {
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

// ClearChain implements hostprep.IPTables.
func (f *IPTables) ClearChain(table, chain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.chain(table, chain); err != nil {
		return err
	}
	f.tables[table][chain] = []string{}
	return nil
}

// DeleteChain implements hostprep.IPTables; a chain still jumped to cannot go.
func (f *IPTables) DeleteChain(table, chain string) error {
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

// Rules implements hostprep.IPTables.
func (f *IPTables) Rules(table, chain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	var out []string
	for _, x := range r {
		out = append(out, "-A "+chain+" "+x)
	}
	return out, err
}

// Exists implements hostprep.IPTables.
func (f *IPTables) Exists(table, chain string, rule ...string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	if err != nil {
		return false, err
	}
	return slices.Contains(r, strings.Join(rule, " ")), nil
}

// Append implements hostprep.IPTables.
func (f *IPTables) Append(table, chain string, rule ...string) error {
	return f.Insert(table, chain, -1, rule...)
}

// Insert implements hostprep.IPTables; pos is 1-based, -1 appends.
func (f *IPTables) Insert(table, chain string, pos int, rule ...string) error {
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

// Delete implements hostprep.IPTables.
func (f *IPTables) Delete(table, chain string, rule ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.chain(table, chain)
	if err != nil {
		return err
	}
	i := slices.Index(r, strings.Join(rule, " "))
	if i < 0 {
		return fmt.Errorf("rule in %s/%s: %w", table, chain, hostprep.ErrNotExist)
	}
	f.tables[table][chain] = slices.Delete(r, i, i+1)
	return nil
}

// String renders the tables as iptables-save would, without counters.
func (f *IPTables) String() string {
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
