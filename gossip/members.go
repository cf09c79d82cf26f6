package gossip

import (
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states as `knode status` reports them.
const (
	StateAlive = "alive"
	StateDead  = "dead"
	StateLeft  = "left"
)

// Member is one node as this node's gossip layer sees it.
type Member struct {
	Name     string         `json:"name"`
	Addr     netip.AddrPort `json:"addr"`
	State    string         `json:"state"`
	Version  string         `json:"version"` // from memberlist's node meta
	LastSeen time.Time      `json:"lastSeen"`
}

// memberTable records membership events; memberlist forgets dead nodes'
// history, knode reports it.
type memberTable struct {
	mu      sync.Mutex
	m       map[string]Member
	live    map[string]bool // the alive set, shared by readers until m changes
	changed func()
}

func (t *memberTable) update(n *memberlist.Node, state string) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	t.mu.Lock()
	t.m[n.Name] = Member{Name: n.Name, Addr: netip.AddrPortFrom(addr.Unmap(), n.Port), State: state, Version: metaVersion(n.Meta), LastSeen: time.Now()}
	t.live = nil
	t.mu.Unlock()
	t.changed()
}

func (t *memberTable) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.m[name]
	return m, ok
}

// alive is the set of alive members. The map is shared by every caller
// until membership changes: it must not be modified.
func (t *memberTable) alive() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == nil {
		t.live = make(map[string]bool, len(t.m))
		for name, m := range t.m {
			if m.State == StateAlive {
				t.live[name] = true
			}
		}
	}
	return t.live
}

func (t *memberTable) list() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Member, 0, len(t.m))
	now := time.Now()
	for _, m := range t.m {
		if m.State == StateAlive {
			m.LastSeen = now
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
