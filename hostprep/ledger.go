package hostprep

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// The ledger is how reset tells knode's state from the host's: for each
// host path knode changed, how knode found it before its first change.
// A file knode created is removed; a file of the host's that knode
// overwrote is saved first and put back; a directory holding another
// installation's state (a containerd, kubelet or etcd that ran before knode)
// is never removed, only what knode wrote into it. The ledger lives in the
// data directory, which reset removes last.
const (
	pathCreated  = "created"
	pathBackedUp = "backup"
	pathForeign  = "foreign"
	// pathCreatedDir is a directory knode's first write under it created;
	// reset removes it at the end if it is empty by then.
	pathCreatedDir = "created-dir"
	// pathRestored marks a host's file that reset put back: it is the
	// host's again, and no later step of the reset may take it for knode's.
	pathRestored = "restored"
	// unitPrefix keys a unit's state before knode: "enabled", "active" or
	// both, comma-separated; reset brings the unit back to it.
	unitPrefix = "unit:"
)

// foreignState lists the directories of state that another installation
// may have left, each with a file that only such state holds.
func foreignState() [][2]string {
	return [][2]string{
		{ContainerdRoot, "io.containerd.metadata.v1.bolt/meta.db"},
		{"/var/lib/kubelet", "pods"},
		{EtcdDataDir, "member"},
		{PKIDir, "ca.crt"},
		{ManifestsDir, "kube-apiserver.yaml"},
	}
}

// runtimeDirs are the directories knode's containerd and CNI plugins make
// for themselves (containerd's opt plugin, CNI's results and host-local's
// leases); reset removes those that did not exist before knode.
func runtimeDirs() []string { return []string{"/opt/containerd", "/var/lib/cni"} }

// foreignUnits are the services whose state reset restores.
func foreignUnits() []string {
	return []string{"containerd.service", "kubelet.service", "etcd.service", "docker.service"}
}

func ledgerPath(s *Spec) string              { return s.statePath("ledger.json") }
func backupPath(s *Spec, name string) string { return path.Join(s.statePath("backup"), name) }

func readLedger(e *Env) (map[string]string, error) {
	l := map[string]string{}
	b, err := e.Host.Files.ReadFile(ledgerPath(e.Spec))
	if notExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ledgerPath(e.Spec), err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", ledgerPath(e.Spec), err)
	}
	return l, nil
}

func writeLedger(e *Env, l map[string]string) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the ledger: %w", err)
	}
	if err := e.Host.Files.WriteFile(ledgerPath(e.Spec), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", ledgerPath(e.Spec), err)
	}
	return nil
}

// noteWrite records, before knode first writes name, how it found it:
// absent, or a file of the host's, whose content it saves.
func noteWrite(e *Env, name string) error {
	l, err := readLedger(e)
	if err != nil {
		return err
	}
	if st, ok := l[name]; ok && st != pathRestored {
		return nil
	}
	// The directories this write will create (on a real host reset left
	// /etc/kubernetes, /etc/cni/net.d and /etc/containerd behind, empty).
	for d := path.Dir(name); d != "/" && d != "." && !e.Host.Files.Exists(d); d = path.Dir(d) {
		if _, ok := l[d]; !ok {
			l[d] = pathCreatedDir
		}
	}
	old, err := e.Host.Files.ReadFile(name)
	switch {
	case notExist(err):
		l[name] = pathCreated
	case err != nil:
		return fmt.Errorf("read %s: %w", name, err)
	default:
		// The backup keeps the file's mode (a containerd config may hold
		// registry credentials, 0600), which reset gives back.
		mode, err := e.Host.Files.Mode(name)
		if err != nil {
			return fmt.Errorf("back up %s: %w", name, err)
		}
		if err := e.Host.Files.WriteFile(backupPath(e.Spec, name), old, mode); err != nil {
			return fmt.Errorf("back up %s: %w", name, err)
		}
		l[name] = pathBackedUp
	}
	return writeLedger(e, l)
}

// planRecordHost records, on knode's first run on this host, the other
// installations' state and the services it will take over. Later runs
// (the ledger exists, or knode's own agent unit does) record nothing.
func planRecordHost(ctx context.Context, e *Env) ([]Change, error) {
	if e.Host.Files.Exists(ledgerPath(e.Spec)) || e.Host.Files.Exists(path.Join(SystemdUnitDir, "knode.service")) {
		return nil, nil
	}
	l := map[string]string{}
	for _, d := range foreignState() {
		if e.Host.Files.Exists(path.Join(d[0], d[1])) {
			l[d[0]] = pathForeign
		}
	}
	for _, d := range runtimeDirs() {
		if !e.Host.Files.Exists(d) {
			l[d] = pathCreated
		}
	}
	for _, u := range foreignUnits() {
		active, enabled, err := e.Host.Systemd.State(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("state of %s: %w", u, err)
		}
		var st []string
		if enabled {
			st = append(st, "enabled")
		}
		if active == "active" {
			st = append(st, "active")
		}
		if len(st) > 0 {
			l[unitPrefix+u] = strings.Join(st, ",")
		}
	}
	return []Change{change("record the host's state before knode ("+ledgerPath(e.Spec)+")", func(context.Context) error {
		return writeLedger(e, l)
	})}, nil
}

// priorUnit returns how a unit was before knode: enabled, active.
func priorUnit(l map[string]string, unit string) (enabled, active bool) {
	st := strings.Split(l[unitPrefix+unit], ",")
	return slices.Contains(st, "enabled"), slices.Contains(st, "active")
}

// undoPath returns the changes undoing knode's work at name: remove what
// knode created, put back what it overwrote, and inside another
// installation's directory only that.
func undoPath(e *Env, l map[string]string, name string) []Change {
	switch l[name] {
	case pathBackedUp:
		return []Change{change("restore "+name+" as it was before knode", func(context.Context) error {
			old, err := e.Host.Files.ReadFile(backupPath(e.Spec, name))
			if err != nil {
				return fmt.Errorf("read the backup of %s: %w", name, err)
			}
			mode, err := e.Host.Files.Mode(backupPath(e.Spec, name))
			if err != nil {
				return fmt.Errorf("read the backup of %s: %w", name, err)
			}
			if err := e.Host.Files.WriteFile(name, old, mode); err != nil {
				return fmt.Errorf("restore %s: %w", name, err)
			}
			if err := e.Host.Files.Remove(backupPath(e.Spec, name)); err != nil {
				return fmt.Errorf("remove the backup of %s: %w", name, err)
			}
			return markRestored(e, name)
		})}
	case pathRestored:
		return nil
	case pathForeign:
		return undoUnder(e, l, name)
	}
	if !e.Host.Files.Exists(name) {
		return nil
	}
	for p, st := range l {
		if st == pathRestored && strings.HasPrefix(p, name+"/") {
			// A host's file is back inside it: only what knode made goes.
			return undoUnder(e, l, name)
		}
	}
	cs := []Change{change("remove "+name, func(context.Context) error {
		if err := e.Host.Files.RemoveAll(name); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		return forgetRemoved(e, name)
	})}
	// A file of the host's that knode overwrote inside it goes back after
	// the removal (a host's etcd.yaml in a manifests directory knode made).
	for _, p := range slices.Sorted(maps.Keys(l)) {
		if strings.HasPrefix(p, name+"/") && l[p] == pathBackedUp {
			cs = append(cs, undoPath(e, l, p)...)
		}
	}
	return cs
}

// undoUnder undoes knode's work at each path the ledger holds under name,
// and leaves the rest of that directory.
func undoUnder(e *Env, l map[string]string, name string) []Change {
	var cs []Change
	for _, p := range slices.Sorted(maps.Keys(l)) {
		if strings.HasPrefix(p, name+"/") && l[p] != pathForeign {
			cs = append(cs, undoPath(e, l, p)...)
		}
	}
	return cs
}

// markRestored records that name is the host's file again.
func markRestored(e *Env, name string) error {
	l, err := readLedger(e)
	if err != nil {
		return err
	}
	l[name] = pathRestored
	return writeLedger(e, l)
}

// forgetRemoved drops name and what lies under it from the ledger once
// removed, except the backups still to be put back.
func forgetRemoved(e *Env, name string) error {
	l, err := readLedger(e)
	if err != nil {
		return err
	}
	for p, v := range l {
		if v != pathBackedUp && v != pathRestored && (p == name || strings.HasPrefix(p, name+"/")) {
			if err := forget(e, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget drops name and what lies under it from the ledger once undone; an
// empty ledger is removed (a rolled-back run leaves none).
func forget(e *Env, name string) error {
	l, err := readLedger(e)
	if err != nil {
		return err
	}
	n := len(l)
	maps.DeleteFunc(l, func(p, _ string) bool { return p == name || strings.HasPrefix(p, name+"/") })
	switch {
	case len(l) == n:
		return nil
	case len(l) == 0:
		return e.Host.Files.Remove(ledgerPath(e.Spec))
	}
	return writeLedger(e, l)
}

// leftoversPhase is the last step of a reset and of a rollback: planLeftovers.
func leftoversPhase() Phase {
	return Phase{Name: "leftovers", PlanReset: func(ctx context.Context, e *Env) ([]Change, error) {
		return planLeftovers(e)
	}}
}

// planLeftovers returns the changes that undo what the phases' resets left in
// the ledger: paths knode's runtime made (runtimeDirs), then the directories
// knode's writes created, deepest first, each removed only if empty by then.
func planLeftovers(e *Env) ([]Change, error) {
	l, err := readLedger(e)
	if err != nil {
		return nil, err
	}
	// Entries for paths that are gone need no change: drop them (the ledger
	// is knode's own state, in the data directory), and the ledger with them
	// once it is empty.
	gone := false
	for p, kind := range l {
		if (kind == pathCreatedDir || kind == pathCreated && slices.Contains(runtimeDirs(), p)) && !e.Host.Files.Exists(p) {
			delete(l, p)
			gone = true
		}
	}
	switch {
	case gone && len(l) == 0:
		return nil, e.Host.Files.Remove(ledgerPath(e.Spec))
	case gone:
		if err := writeLedger(e, l); err != nil {
			return nil, err
		}
	}
	var cs []Change
	var dirs []string
	for _, p := range slices.Sorted(maps.Keys(l)) {
		switch {
		case l[p] == pathCreatedDir:
			dirs = append(dirs, p)
		case l[p] == pathCreated && slices.Contains(runtimeDirs(), p):
			cs = append(cs, undoPath(e, l, p)...)
		}
	}
	slices.Reverse(dirs) // children sort after their parents
	for _, d := range dirs {
		if !e.Host.Files.Exists(d) {
			continue
		}
		cs = append(cs, change("remove "+d+" if empty (knode created it)", func(context.Context) error {
			if err := e.Host.Files.Remove(d); err != nil || e.Host.Files.Exists(d) {
				e.Log.Info("directory kept: not empty", "dir", d, "err", err)
				return nil
			}
			return forget(e, d)
		}))
	}
	return cs, nil
}
