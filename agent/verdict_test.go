package agent

import (
	"testing"
	"time"

	"knode.dev/knode/gossip"
)

func TestJudge(t *testing.T) {
	now := time.Now()
	good := gossip.Health{Name: "a", Gen: uint64(now.UnixNano()), Checks: []gossip.Check{{What: gossip.CompKubelet, OK: true}}}
	member := func(name, state string, roles ...string) MemberStatus {
		return MemberStatus{Name: name, State: state, Roles: append([]string{}, roles...)}
	}
	for _, tc := range []struct {
		name    string
		m       MemberStatus
		h       *gossip.Health
		problem string
		warning string
	}{
		{"healthy", member("a", "alive", "worker"), &good, "", ""},
		{"dead", member("a", "dead", "worker"), &good, "node is dead", ""},
		{"joining", member("a", "alive"), nil, "joining: no pod subnet yet", ""},
		{"silent", member("a", "alive", "master"), nil, "no health reported yet", ""},
		{"failing", member("a", "alive", "master"), &gossip.Health{Checks: []gossip.Check{{What: gossip.CompEtcd, Detail: "etcd unhealthy: RAFT NO LEADER"}}}, "etcd: etcd unhealthy: RAFT NO LEADER", ""},
		{"no checks", member("a", "alive", "worker"), &gossip.Health{}, "no checks reported", ""},
		{"expired", member("a", "alive", "worker"), &gossip.Health{Checks: good.Checks, CertExpiry: now.Add(-time.Hour).Unix(), CertName: "kubelet-client"}, "certificate kubelet-client expired", ""},
		{"expiring", member("a", "alive", "worker"), &gossip.Health{Checks: good.Checks, CertExpiry: now.Add(49 * time.Hour).Unix(), CertName: "ca"}, "", "certificate ca expires in 2 days"},
	} {
		st := Status{Members: []MemberStatus{tc.m}}
		hs := map[string]gossip.Health{}
		if tc.h != nil {
			hs["a"] = *tc.h
		}
		st.judge(hs, now)
		m := st.Members[0]
		var problem, warning string
		if len(m.Problems) > 0 {
			problem = m.Problems[0]
		}
		if len(m.Warnings) > 0 {
			warning = m.Warnings[0]
		}
		if problem != tc.problem || warning != tc.warning || st.Healthy != (tc.problem == "") || m.Healthy != st.Healthy || (tc.h != nil) != (m.Health != nil) {
			t.Errorf("%s: healthy %v, problems %q, warnings %q", tc.name, st.Healthy, m.Problems, m.Warnings)
		}
	}
	if st := (Status{}); func() bool { st.judge(nil, now); return st.Healthy }() {
		t.Error("a cluster of no members is healthy")
	}
}
