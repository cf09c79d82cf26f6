package etcdmember

import (
	"errors"
	"testing"
)

func members(healthy ...bool) []Member {
	var ms []Member
	for i, h := range healthy {
		ms = append(ms, Member{ID: uint64(i + 1), Name: string(rune('a' + i)), Healthy: h})
	}
	return ms
}

func TestCheckRemove(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ms     []Member
		remove uint64
		lost   bool
	}{
		{"3 healthy, remove one", members(true, true, true), 1, false},
		{"3, the dead one removed", members(false, true, true), 1, false},
		{"3 with one dead, a healthy one removed", members(false, true, true), 2, true},
		{"2 healthy, remove one", members(true, true), 1, false},
		{"2, the other dead", members(true, false), 1, true},
		{"5 with two dead, a dead one removed", members(false, false, true, true, true), 1, false},
		{"5 with two dead, a healthy one removed", members(false, false, true, true, true), 3, true},
		{"1 member", members(true), 1, true},
		{"learners do not count", append(members(false, true, true), Member{ID: 9, Learner: true, Healthy: true}), 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRemove(tt.ms, tt.remove)
			if lost := errors.Is(err, ErrQuorum); lost != tt.lost || (err != nil && !lost) {
				t.Fatalf("CheckRemove = %v, want quorum lost %v", err, tt.lost)
			}
		})
	}
	if err := CheckRemove(members(true, true, true), 7); err == nil || errors.Is(err, ErrQuorum) {
		t.Fatalf("an unknown member: %v", err)
	}
}

func TestFind(t *testing.T) {
	ms := []Member{
		{ID: 1, Name: "m0", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{ID: 2, PeerURLs: []string{"https://10.0.0.2:2380"}}, // added, never started
	}
	if m, ok := Find(ms, "m0", "https://10.9.9.9:2380"); !ok || m.ID != 1 {
		t.Fatalf("by name: %+v %v", m, ok)
	}
	if m, ok := Find(ms, "m1", "https://10.0.0.2:2380"); !ok || m.ID != 2 {
		t.Fatalf("by peer URL: %+v %v", m, ok)
	}
	if _, ok := Find(ms, "m2", "https://10.0.0.1:2380"); ok {
		t.Fatal("a started member found by another node's name through its peer URL")
	}
}
