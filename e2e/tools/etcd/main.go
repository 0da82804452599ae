// Command etcd runs the pinned etcd server (go.etcd.io/etcd/server/v3) for the
// end-to-end harness. It is a thin entry point over etcdmain.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
