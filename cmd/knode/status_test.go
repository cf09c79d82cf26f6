package main

import (
	"strings"
	"testing"
	"time"

	"knode.dev/knode/agent"
)

func TestStatusNamesRefusedInput(t *testing.T) {
	var b strings.Builder
	st := agent.Status{Self: "m0", Members: []agent.MemberStatus{{Name: "m0", State: "alive", Roles: []string{"master"}, PodCIDR: "10.10.0.0/24"}},
		Refused: map[string]uint64{"evil": 12, "m0": 1}}
	printStatus(&b, st, time.Now())
	if !strings.Contains(b.String(), "by claimed author: evil 12, m0 1") {
		t.Errorf("refusals not shown:\n%s", b.String())
	}
	b.Reset()
	st.Refused = nil
	printStatus(&b, st, time.Now())
	if strings.Contains(b.String(), "refused") {
		t.Errorf("refusals shown when there are none:\n%s", b.String())
	}
}
