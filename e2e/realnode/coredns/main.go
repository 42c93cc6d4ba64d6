// Command coredns is CoreDNS with only the plugins the e2e cluster's DNS uses: the kubernetes
// zone, cache, health/ready probes and logging. No forward plugin: names outside the cluster
// are refused, so no query leaves this machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The plugin chain order, a subset of CoreDNS's generated list kept in its order.
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
