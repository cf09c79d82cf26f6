package manifests

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// node is a YAML value: string, int, bool, []any or obj.
type obj []kv

// kv is one key of an ordered mapping.
type kv struct {
	k string
	v any
}

// plain matches strings that YAML reads back as the same string unquoted.
var plainRE = regexp.MustCompile(`^[A-Za-z/][A-Za-z0-9_./:=,*-]*$`)

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		if plainRE.MatchString(x) && !reserved(x) {
			return x
		}
		return strconv.Quote(x)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	panic(fmt.Sprintf("manifests: unsupported YAML value %T", v))
}

// reserved reports words YAML would read as something other than a string.
func reserved(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~":
		return true
	}
	return false
}

// yamlDoc renders o as a YAML document.
func yamlDoc(o obj) []byte {
	var b strings.Builder
	writeObj(&b, o, 0, false)
	return []byte(b.String())
}

func writeObj(b *strings.Builder, o obj, indent int, inList bool) {
	for i, e := range o {
		pad := strings.Repeat(" ", indent)
		if inList && i == 0 {
			pad = ""
		}
		writeValue(b, pad+e.k+":", e.v, indent)
	}
}

func writeValue(b *strings.Builder, prefix string, v any, indent int) {
	switch x := v.(type) {
	case obj:
		if len(x) == 0 {
			b.WriteString(prefix + " {}\n")
			return
		}
		b.WriteString(prefix + "\n")
		writeObj(b, x, indent+2, false)
	case []any:
		if len(x) == 0 {
			b.WriteString(prefix + " []\n")
			return
		}
		b.WriteString(prefix + "\n")
		for _, item := range x {
			pad := strings.Repeat(" ", indent)
			if o, ok := item.(obj); ok {
				b.WriteString(pad + "- ")
				writeObj(b, o, indent+2, true)
				continue
			}
			b.WriteString(pad + "- " + scalar(item) + "\n")
		}
	default:
		b.WriteString(prefix + " " + scalar(v) + "\n")
	}
}

// strs converts a string slice to a YAML list.
func strs(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}
