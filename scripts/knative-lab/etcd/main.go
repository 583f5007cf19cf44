// Command etcd runs etcd 3.5 (go.etcd.io/etcd/server/v3) for the Knative lab
// (scripts/knative-lab.sh). A nested module: the root module never builds it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
