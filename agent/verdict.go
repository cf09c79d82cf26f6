package agent

import (
	"fmt"
	"time"

	"knode.dev/knode/gossip"
)

// HealthStatus is a member's last health summary, as it published it.
type HealthStatus struct {
	Checked        time.Time      `json:"checked"`
	Checks         []gossip.Check `json:"checks"`
	KubeletVersion string         `json:"kubeletVersion,omitempty"`
	RuntimeVersion string         `json:"runtimeVersion,omitempty"`
	CertExpiry     *time.Time     `json:"certExpiry,omitempty"`
	CertName       string         `json:"certName,omitempty"`
}

// certWarn is how close a certificate's expiry must be to be reported (a
// warning: it does not make the node unhealthy until it has expired).
const certWarn = 30 * 24 * time.Hour

// judge fills each member's health and problems from the gossiped
// summaries, and the cluster's verdict: healthy when every member is alive,
// has its place and reports every check passing.
func (st *Status) judge(health map[string]gossip.Health, now time.Time) {
	st.Healthy = len(st.Members) > 0
	for i := range st.Members {
		m := &st.Members[i]
		h, ok := health[m.Name]
		if ok {
			hs := &HealthStatus{Checked: time.Unix(0, int64(h.Gen)).UTC().Truncate(time.Second), Checks: h.Checks,
				KubeletVersion: h.KubeletVersion, RuntimeVersion: h.RuntimeVersion, CertName: h.CertName}
			if h.CertExpiry > 0 {
				t := time.Unix(h.CertExpiry, 0).UTC()
				hs.CertExpiry = &t
			}
			m.Health = hs
		}
		m.Problems = memberProblems(*m, h, ok, now)
		m.Healthy = len(m.Problems) == 0
		st.Healthy = st.Healthy && m.Healthy
		if hs := m.Health; hs != nil && hs.CertExpiry != nil && hs.CertExpiry.After(now) && hs.CertExpiry.Sub(now) < certWarn {
			m.Warnings = append(m.Warnings, fmt.Sprintf("certificate %s expires in %d days", hs.CertName, int(hs.CertExpiry.Sub(now).Hours()/24)))
		}
	}
}

func memberProblems(m MemberStatus, h gossip.Health, reported bool, now time.Time) []string {
	switch {
	case m.State != gossip.StateAlive:
		return []string{"node is " + m.State}
	case m.Error != "":
		return []string{"no place in the cluster: " + m.Error}
	case len(m.Roles) == 0:
		return []string{"joining: no pod subnet yet"}
	case !reported:
		return []string{"no health reported yet"}
	}
	var out []string
	for _, c := range h.Checks {
		if !c.OK {
			out = append(out, c.What.String()+": "+c.Detail)
		}
	}
	if len(h.Checks) == 0 {
		out = append(out, "no checks reported")
	}
	if h.CertExpiry > 0 && time.Unix(h.CertExpiry, 0).Before(now) {
		out = append(out, fmt.Sprintf("certificate %s expired", h.CertName))
	}
	return out
}
