package lab

import (
	"regexp"
	"strings"
)

// NormaliseNetState turns the raw output of `lab.sh snapshot` (sections headed "== name")
// into a form in which two snapshots of one node compare equal exactly when its network
// state is the same:
//   - iptables-save sections lose comments (they carry timestamps) and packet/byte counters,
//     and tables that hold no rule and only ACCEPT policies are dropped: once any program
//     (kube-proxy, knode) has touched a table, nf_tables keeps it, empty, and iptables-save
//     prints it, although the host filters nothing more than before;
//   - ip addr sections lose address lifetimes, which count down;
//   - trailing blanks and empty lines go.
func NormaliseNetState(raw string) string {
	var out []string
	for _, sec := range splitSections(raw) {
		body := sec.body
		switch {
		case strings.Contains(sec.name, "tables"):
			body = NormaliseIptablesSave(body)
		case strings.HasPrefix(sec.name, "ip addr"):
			body = lifetimes.ReplaceAllString(body, "")
		}
		out = append(out, "== "+sec.name)
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimRight(l, " \t"); l != "" {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n") + "\n"
}

var (
	lifetimes = regexp.MustCompile(`(?m)^\s*valid_lft \S+ preferred_lft \S+\s*$`)
	// ":CHAIN POLICY [packets:bytes]" and "[packets:bytes] -A ..." (iptables-save -c)
	chainCounters = regexp.MustCompile(`^(:\S+ \S+) \[\d+:\d+\]$`)
	ruleCounters  = regexp.MustCompile(`^\[\d+:\d+\] `)
)

type section struct{ name, body string }

func splitSections(raw string) []section {
	var secs []section
	cur := -1
	var b strings.Builder
	flush := func() {
		if cur >= 0 {
			secs[cur].body = b.String()
		}
		b.Reset()
	}
	for _, l := range strings.Split(raw, "\n") {
		if name, ok := strings.CutPrefix(l, "== "); ok {
			flush()
			secs = append(secs, section{name: strings.TrimSpace(name)})
			cur = len(secs) - 1
			continue
		}
		if cur < 0 { // text before the first heading
			secs = append(secs, section{name: "-"})
			cur = 0
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	flush()
	return secs
}

// NormaliseIptablesSave drops comments and counters from iptables-save output and leaves out
// tables without rules whose chains all have the ACCEPT policy (see NormaliseNetState). Lines
// that are not iptables-save syntax (an error message, say) are kept as they are.
func NormaliseIptablesSave(s string) string {
	var out, table []string
	inTable, empty := false, true
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, " \t")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = chainCounters.ReplaceAllString(l, "$1")
		l = ruleCounters.ReplaceAllString(l, "")
		switch {
		case strings.HasPrefix(l, "*"):
			inTable, empty, table = true, true, []string{l}
		case inTable && l == "COMMIT":
			if !empty {
				out = append(out, append(table, l)...)
			}
			inTable, table = false, nil
		case inTable:
			if !strings.HasPrefix(l, ":") || !strings.HasSuffix(l, " ACCEPT") {
				empty = false
			}
			table = append(table, l)
		default:
			out = append(out, l)
		}
	}
	out = append(out, table...) // an unterminated table, kept verbatim
	return strings.Join(out, "\n")
}
