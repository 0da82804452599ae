package app

import (
	"context"
	"fmt"
	"net"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Run builds the API client and the listener from the options, and serves
// the extender until ctx ends.
func Run(ctx context.Context, o *Options, version string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	// Protobuf, as kube-scheduler and kubelet use: cheaper to decode here,
	// and the API server's watch cache need not encode every pod event
	// in JSON for this one watcher.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.UserAgent = "gpuslice-extender/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	ln, err := net.Listen("tcp", o.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.ListenAddress, err)
	}
	d := Deps{Client: client, Listener: ln, Version: version}
	if o.MetricsListenAddress != "" {
		if d.MetricsListener, err = net.Listen("tcp", o.MetricsListenAddress); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s: %w", o.MetricsListenAddress, err)
		}
	}
	return Serve(ctx, o, d)
}
