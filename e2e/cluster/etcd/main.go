// Command etcd is the etcd server, built from the published go.etcd.io/etcd/server/v3 module
// (its own go.mod carries replace directives, so `go install` refuses it).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
