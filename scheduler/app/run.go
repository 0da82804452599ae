package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/extender"
)

// Run starts the informers and serves the extender until ctx ends.
func Run(ctx context.Context, o *Options, version string) error {
	logger := klog.FromContext(ctx)
	policies, err := o.Policies()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cfg.UserAgent = "gpuslice-extender/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nodeInf := factory.Core().V1().Nodes().Informer()
	podInf := factory.Core().V1().Pods().Informer()
	if err := podInf.SetTransform(stripManagedFields); err != nil {
		return fmt.Errorf("set pod transform: %w", err)
	}
	if err := nodeInf.SetTransform(stripManagedFields); err != nil {
		return fmt.Errorf("set node transform: %w", err)
	}
	c := cache.New(logger, o.SliceMiB, o.ReservationTTL)
	defer c.Stop()
	if err := c.AddEventHandlers(nodeInf, podInf); err != nil {
		return err
	}
	ext := extender.NewExtender(c, policies, client, factory.Core().V1().Pods().Lister(), clock.RealClock{})
	var ready atomic.Bool
	srv := &http.Server{
		Handler:           extender.NewHandler(logger, ext, &ready, version, o.MaxBodyBytes),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln, err := net.Listen("tcp", o.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.ListenAddress, err)
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if o.TLSCertFile != "" {
			err = srv.ServeTLS(ln, o.TLSCertFile, o.TLSKeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	logger.Info("Serving the gpuslice extender", "address", ln.Addr().String(), "policy", policies.For("").Name(), "profilePolicies", policies.Describe(), "sliceMiB", o.SliceMiB, "version", version)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !toolscache.WaitForCacheSync(ctx.Done(), nodeInf.HasSynced, podInf.HasSynced) {
		_ = srv.Close()
		return errors.New("informer caches did not sync")
	}
	ready.Store(true)
	logger.Info("Informer caches synced; ready")
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down server: %w", err)
	}
	return nil
}

// stripManagedFields drops managed fields from cached objects: the cache
// holds every pod, and managed fields are most of their size.
func stripManagedFields(obj any) (any, error) {
	if _, ok := obj.(*v1.Pod); !ok {
		if _, ok := obj.(*v1.Node); !ok {
			return obj, nil
		}
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
