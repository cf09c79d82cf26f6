package registry

import (
	"fmt"
	"strings"
)

// NormalizeRef turns an image name as users write it (nginx, nginx:1.27,
// example.com/team/app:v2) into the full form knode stores and containerd
// asks for (docker.io/library/nginx:latest, ...).
func NormalizeRef(s string) (string, error) {
	if strings.Contains(s, "@") {
		return "", fmt.Errorf("image name %q: a name with a digest cannot be a tag (give name:tag)", s)
	}
	name, tag := s, "latest"
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		name, tag = s[:i], s[i+1:]
	}
	host, path, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		host, path = "docker.io", "library/"+name
	case !strings.ContainsAny(host, ".:") && host != "localhost":
		host, path = "docker.io", name
	}
	if host == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	switch {
	case !hostRE.MatchString(host):
		return "", fmt.Errorf("image name %q: bad registry host %q", s, host)
	case len(path) > maxNameLen || !nameRE.MatchString(path):
		return "", fmt.Errorf("image name %q: bad repository %q (lower-case letters, digits, . _ - and /)", s, path)
	case !tagRE.MatchString(tag):
		return "", fmt.Errorf("image name %q: bad tag %q", s, tag)
	}
	return host + "/" + path + ":" + tag, nil
}
