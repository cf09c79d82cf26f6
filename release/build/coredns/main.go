// Command coredns is knode's cluster DNS: upstream CoreDNS with only the plugins a Kubernetes
// cluster DNS needs, instead of upstream's every-plugin build (cloud SDKs included).
//
// Plugins register themselves from their init functions; the order in which they run is not
// the import order but dnsserver.Directives (upstream's generated zdirectives.go), which is
// left untouched, so importing a subset keeps upstream's order.
package main

import (
	"github.com/coredns/coredns/coremain"

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

func main() {
	coremain.Run()
}
