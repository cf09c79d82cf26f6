package manifests

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCoreDNSGolden(t *testing.T) {
	golden(t, "coredns.yaml", CoreDNSAddon(CoreDNS{
		Image:     "knode.local/coredns:v1.14.7",
		ClusterIP: ClusterDNS(netip.MustParsePrefix("10.96.0.0/12")),
		Domain:    "cluster.local",
	}))
}

func TestCoreDNSAddon(t *testing.T) {
	c := CoreDNS{Image: "knode.local/coredns:v9", ClusterIP: netip.MustParseAddr("172.20.5.10"), Domain: "k8s.example", Replicas: 3}
	docs := parseStream(t, CoreDNSAddon(c))

	type id struct{ kind, name string }
	var got []id
	for i, d := range docs {
		m := d.(map[string]any)
		if _, ok := m["apiVersion"].(string); !ok {
			t.Errorf("document %d has no apiVersion", i)
		}
		kind := str(t, d, "kind")
		got = append(got, id{kind, str(t, d, "metadata", "name")})
		if ns := lookup(d, "metadata", "namespace"); !strings.HasPrefix(kind, "Cluster") && ns != "kube-system" {
			t.Errorf("%s is in namespace %v, want kube-system", kind, ns)
		}
	}
	want := []id{{"ServiceAccount", "coredns"}, {"ClusterRole", "system:coredns"}, {"ClusterRoleBinding", "system:coredns"},
		{"ConfigMap", "coredns"}, {"Deployment", "coredns"}, {"Service", "kube-dns"}}
	if !slices.Equal(got, want) {
		t.Fatalf("objects = %v, want %v", got, want)
	}

	corefile := str(t, docs[3], "data", "Corefile")
	if !strings.Contains(corefile, "\n    kubernetes k8s.example in-addr.arpa ip6.arpa {\n") {
		t.Errorf("Corefile does not serve k8s.example:\n%s", corefile)
	}
	if got := str(t, docs[5], "spec", "clusterIP"); got != "172.20.5.10" {
		t.Errorf("Service clusterIP = %s, want 172.20.5.10", got)
	}

	dep := docs[4]
	if got := lookup(dep, "spec", "replicas"); got != 3 {
		t.Errorf("replicas = %v, want 3", got)
	}
	pod := lookup(dep, "spec", "template", "spec")
	if got := lookup(dep, "spec", "template", "metadata", "labels", "k8s-app"); got != "kube-dns" {
		t.Errorf("pod label k8s-app = %v, want kube-dns (the Service's selector)", got)
	}
	for _, kv := range [][2]string{{"dnsPolicy", "Default"}, {"serviceAccountName", "coredns"}, {"priorityClassName", "system-cluster-critical"}} {
		if got := lookup(pod, kv[0]); got != kv[1] {
			t.Errorf("pod %s = %v, want %s", kv[0], got, kv[1])
		}
	}
	ctr := lookup(pod, "containers").([]any)[0]
	if got := str(t, ctr, "image"); got != c.Image {
		t.Errorf("image = %s, want %s", got, c.Image)
	}
	if got := lookup(ctr, "imagePullPolicy"); got != "Never" {
		t.Errorf("imagePullPolicy = %v, want Never", got)
	}
	if got := fmt.Sprint(lookup(ctr, "args")); got != "[-conf /etc/coredns/Corefile]" {
		t.Errorf("args = %s", got)
	}
}

func TestCoreDNSDefaults(t *testing.T) {
	docs := parseStream(t, CoreDNSAddon(CoreDNS{Image: "i", ClusterIP: netip.MustParseAddr("10.0.0.10")}))
	if got := lookup(docs[4], "spec", "replicas"); got != 1 {
		t.Errorf("replicas = %v, want 1", got)
	}
	if c := str(t, docs[3], "data", "Corefile"); !strings.Contains(c, "kubernetes cluster.local in-addr.arpa") {
		t.Errorf("Corefile does not default to cluster.local:\n%s", c)
	}
}

// TestCorefilePlugins keeps the Corefile to the plugins knode's CoreDNS
// build compiles in (release/build/coredns); any other directive would
// stop CoreDNS at startup.
func TestCorefilePlugins(t *testing.T) {
	built := []string{"kubernetes", "forward", "cache", "errors", "health", "ready", "loop", "reload", "loadbalance", "log", "prometheus"}
	depth := 0
	for line := range strings.Lines(corefile("cluster.local")) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if depth == 1 && f[0] != "}" && !slices.Contains(built, f[0]) {
			t.Errorf("Corefile uses plugin %q, not in knode's CoreDNS build", f[0])
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
	}
	if depth != 0 {
		t.Errorf("Corefile braces unbalanced (depth %d at the end)", depth)
	}
}

// TestParseYAML shows the checking parser rejects what a real YAML parser
// would read differently, so that TestCoreDNSAddon means something.
func TestParseYAML(t *testing.T) {
	for _, bad := range []string{
		"a: 1\n  b: 2\n",         // indented key with no parent
		"a: 1\na: 2\n",           // duplicate key
		"a: b: c\n",              // plain scalar holding ": "
		"a: x #y\n",              // comment would truncate
		"a:\n  - 1\n b: 2\n",     // stray indentation
		"a: |\nb\n",              // block scalar with no indented line
		"a: \"unterminated\n",    // bad quoting
		"a: 'single'\n",          // the renderer never emits these
		"- 1\nb: 2\n",            // list and mapping at one level
		"a: {x: 1}\n",            // flow mappings are not ours
		"a:\n  b: 1\n    c: 2\n", // over-indented
	} {
		if v, err := parseYAML(bad); err == nil {
			t.Errorf("parseYAML(%q) = %v, want an error", bad, v)
		}
	}
	got, err := parseYAML("a:\n- b: 1\n  c: [] \n- \"x\"\nd: |\n  l1\n\n  l2\ne: {}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "map[a:[map[b:1 c:[]] x] d:l1\n\nl2\n e:map[]]" {
		t.Errorf("parseYAML = %s", s)
	}
}

// parseStream splits a multi-document stream and parses every document.
func parseStream(t *testing.T, b []byte) []any {
	t.Helper()
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		t.Fatal("stream does not end in a newline")
	}
	var docs []any
	for i, d := range strings.Split(s, "---\n") {
		v, err := parseYAML(d)
		if err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, d)
		}
		if _, ok := v.(map[string]any); !ok {
			t.Fatalf("document %d is not a mapping:\n%s", i, d)
		}
		docs = append(docs, v)
	}
	return docs
}

func lookup(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(t *testing.T, v any, path ...string) string {
	t.Helper()
	s, ok := lookup(v, path...).(string)
	if !ok {
		t.Fatalf("%s is %v, not a string", strings.Join(path, "."), lookup(v, path...))
	}
	return s
}

// parseYAML reads the block-style subset of YAML that yaml.go and
// configMapDoc write (mappings, lists at their key's indentation, plain,
// double-quoted and literal block scalars, {} and []), strictly: anything
// outside it is an error rather than a guess. The module has no YAML
// dependency, and one is not worth adding for tests.
func parseYAML(doc string) (any, error) {
	p := &yamlParser{lines: strings.Split(strings.TrimSuffix(doc, "\n"), "\n")}
	v, err := p.node(0)
	if err != nil {
		return nil, err
	}
	if p.skipBlank(); p.i < len(p.lines) {
		return nil, fmt.Errorf("line %d: unexpected %q", p.i+1, p.lines[p.i])
	}
	return v, nil
}

type yamlParser struct {
	lines []string
	i     int
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func (p *yamlParser) skipBlank() {
	for p.i < len(p.lines) && strings.TrimSpace(p.lines[p.i]) == "" {
		p.i++
	}
}

// node reads the mapping or list whose lines start at column indent.
func (p *yamlParser) node(indent int) (any, error) {
	p.skipBlank()
	if p.i == len(p.lines) {
		return nil, fmt.Errorf("missing value at end")
	}
	line := p.lines[p.i]
	if indentOf(line) != indent {
		return nil, fmt.Errorf("line %d: indentation %d, want %d", p.i+1, indentOf(line), indent)
	}
	if strings.HasPrefix(line[indent:], "- ") {
		return p.list(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) list(indent int) (any, error) {
	out := []any{}
	for p.skipBlank(); p.i < len(p.lines); p.skipBlank() {
		line := p.lines[p.i]
		if indentOf(line) != indent || !strings.HasPrefix(line[indent:], "- ") {
			break
		}
		item := line[indent+2:]
		if _, _, isKey := splitKey(item); isKey {
			// "- k: v" opens a mapping at indent+2; reread it as such.
			p.lines[p.i] = strings.Repeat(" ", indent+2) + item
			v, err := p.mapping(indent + 2)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			continue
		}
		v, err := scalarValue(item)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", p.i+1, err)
		}
		out = append(out, v)
		p.i++
	}
	return out, nil
}

func (p *yamlParser) mapping(indent int) (any, error) {
	out := map[string]any{}
	for p.skipBlank(); p.i < len(p.lines); p.skipBlank() {
		line := p.lines[p.i]
		if n := indentOf(line); n < indent {
			break
		} else if n > indent {
			return nil, fmt.Errorf("line %d: indentation %d, want %d", p.i+1, n, indent)
		}
		if strings.HasPrefix(line[indent:], "- ") {
			if indent == 0 {
				return nil, fmt.Errorf("line %d: list item in a mapping", p.i+1)
			}
			break // the parent's list goes on
		}
		k, rest, ok := splitKey(line[indent:])
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not a key", p.i+1, line)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", p.i+1, k)
		}
		p.i++
		var v any
		var err error
		switch rest {
		case "":
			p.skipBlank()
			if p.i == len(p.lines) {
				return nil, fmt.Errorf("key %q has no value", k)
			}
			next := p.lines[p.i]
			if n := indentOf(next); n == indent && strings.HasPrefix(next[n:], "- ") {
				v, err = p.list(indent)
			} else {
				v, err = p.node(indent + 2)
			}
		case "|":
			v, err = p.block(indent)
		default:
			v, err = scalarValue(rest)
			if err != nil {
				err = fmt.Errorf("line %d: %w", p.i, err)
			}
		}
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// block reads a literal block scalar ("|", clip chomping) under a key at indent.
func (p *yamlParser) block(indent int) (any, error) {
	var lines []string
	width := -1
	for ; p.i < len(p.lines); p.i++ {
		line := p.lines[p.i]
		if strings.TrimSpace(line) == "" {
			lines = append(lines, "")
			continue
		}
		n := indentOf(line)
		if width < 0 {
			width = n
		}
		if n <= indent {
			break
		}
		if n < width {
			return nil, fmt.Errorf("line %d: block scalar line less indented than its first", p.i+1)
		}
		lines = append(lines, line[width:])
	}
	if width <= indent {
		return nil, fmt.Errorf("line %d: empty block scalar", p.i)
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// splitKey splits "key: value" or "key:"; the key itself must be plain.
func splitKey(s string) (key, rest string, ok bool) {
	if i := strings.Index(s, ": "); i > 0 {
		key, rest = s[:i], strings.TrimSpace(s[i+2:])
	} else if strings.HasSuffix(s, ":") {
		key = s[:len(s)-1]
	} else {
		return "", "", false
	}
	if strings.ContainsAny(key, " \"'{}[]#") {
		return "", "", false
	}
	return key, rest, true
}

func scalarValue(s string) (any, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "{}":
		return map[string]any{}, nil
	case s == "[]":
		return []any{}, nil
	case strings.HasPrefix(s, `"`):
		return strconv.Unquote(s)
	case s == "true" || s == "false":
		return s == "true", nil
	case s == "" || strings.ContainsAny(s[:1], "[]{}#&*!|>'\"%@,?:") || strings.HasPrefix(s, "- "):
		return nil, fmt.Errorf("%q is not a plain scalar", s)
	case strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":"):
		return nil, fmt.Errorf("%q is not a plain scalar", s)
	case reserved(s):
		return nil, fmt.Errorf("%q would not read as a string", s)
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return nil, fmt.Errorf("%q would read as a number", s)
	}
	return s, nil
}
