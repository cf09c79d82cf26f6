package config

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Node is the settings of one machine: its name, where gossip listens and what
// address peers should use, and the data directory every path derives from.
type Node struct {
	Name      string
	Bind      netip.AddrPort
	Advertise netip.AddrPort // zero: chosen from Bind or the host's addresses
	DataDir   string
}

// ValidNodeName reports whether s is a valid Kubernetes node name of the form
// knode accepts: lower-case letters, digits, '-' and '.', starting and ending
// with a letter or digit (so it can never be read as a command-line option).
func ValidNodeName(s string) bool { return nodeNameRE.MatchString(s) }

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$`)

// Validate checks the node settings; it does not touch the network.
func (n Node) Validate() error {
	if !nodeNameRE.MatchString(n.Name) {
		return Usagef("--node-name %q is not a valid Kubernetes node name: use lower-case letters, digits, '-' and '.'", n.Name)
	}
	if n.DataDir == "" || !filepath.IsAbs(n.DataDir) {
		return Usagef("--data-dir %q must be an absolute path (default %s)", n.DataDir, DefaultDataDir)
	}
	if n.Advertise.IsValid() && n.Advertise.Addr().IsUnspecified() {
		return Usagef("--advertise %s is unspecified: give the address peers should use to reach this node", n.Advertise)
	}
	return nil
}

// ParseHostPort parses host:port (or a bare host, with defPort). The host must be
// an IP address, since gossip addresses are compared and routed to.
func ParseHostPort(flag, s string, defPort uint16) (netip.AddrPort, error) {
	host, port := s, strconv.Itoa(int(defPort))
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") == 1 {
		return netip.AddrPort{}, Usagef("%s %q is not host:port: write it like 192.168.1.10:7946", flag, s)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		if ips, lerr := net.LookupIP(host); lerr == nil && len(ips) > 0 {
			for _, ip := range ips {
				if a, ok := netip.AddrFromSlice(ip.To4()); ok && ip.To4() != nil {
					addr, err = a, nil
					break
				}
			}
		}
		if err != nil {
			return netip.AddrPort{}, Usagef("%s %q: %q is neither an IPv4 address nor a resolvable host name", flag, s, host)
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, Usagef("%s %q: port %q must be a number from 1 to 65535", flag, s, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(p)), nil
}

// CheckPortFree fails with a UsageError when the gossip port is taken (TCP or UDP).
func CheckPortFree(flag string, ap netip.AddrPort) error {
	if ap.Port() == 0 {
		return nil
	}
	s := ap.String()
	l, err := net.Listen("tcp", s)
	if err != nil {
		return portError(flag, ap, err)
	}
	l.Close()
	u, err := net.ListenPacket("udp", s)
	if err != nil {
		return portError(flag, ap, err)
	}
	u.Close()
	return nil
}

func portError(flag string, ap netip.AddrPort, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return Usagef("%s %s: port %d is already in use (another knode? see `knode status`); choose another with %s host:port", flag, ap, ap.Port(), flag)
	}
	return Usagef("%s %s: cannot listen there: %v", flag, ap, err)
}

// DefaultNodeName is the host name, lower-cased, as Kubernetes wants it.
func DefaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node"
	}
	return strings.ToLower(h)
}
