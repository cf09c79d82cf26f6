// Command sample-apiserver is the lab's aggregated API server (issue 10): upstream's
// k8s.io/sample-apiserver (the wardle.example.com group, delegated authentication through the
// front-proxy CA and the extension-apiserver-authentication ConfigMap, delegated authorization
// through SubjectAccessReviews), built at the Kubernetes version the payload pins.
//
// `sample-apiserver etcd ARGS...` runs the etcd it stores its objects in instead, so that one
// binary serves both containers of its pod (upstream's e2e pairs it with an etcd image); the
// two share most of their code, so the image stays one file.
//
// It lives under testdata: it is built by the e2e tests in a scratch copy of
// release/build/kube's module (e2e/workload_test.go), never by knode's own module.
package main

import (
	"os"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"
	"k8s.io/sample-apiserver/pkg/cmd/server"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "etcd" {
		etcdmain.Main(os.Args[1:])
		return
	}
	ctx := genericapiserver.SetupSignalContext()
	options := server.NewWardleServerOptions(os.Stdout, os.Stderr)
	os.Exit(cli.Run(server.NewCommandStartWardleServer(ctx, options, false)))
}
