package main

import (
	"github.com/coredns/coredns/coremain"

	// The plugins a cluster DNS needs, instead of upstream's every-plugin build (cloud SDKs
	// included). Plugins register themselves from their init functions; the order in which
	// they run is dnsserver.Directives (upstream's generated zdirectives.go), left untouched,
	// so importing a subset keeps upstream's order.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the prometheus directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// coreDNSFlags are the flags coremain registers on flag.CommandLine from its init (coremain/run.go
// of the pinned version); the other components must not see them.
func coreDNSFlags() []string {
	return []string{"conf", "plugins", "pidfile", "version", "quiet", "dns.port", "p"}
}

// runCoreDNS is the cluster DNS: upstream CoreDNS's main, linked here because its kubernetes
// plugin shares client-go and apimachinery with the Kubernetes components.
func runCoreDNS() int {
	coremain.Run()
	return 0
}
