package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/extender"
)

// Deps are what Serve needs from outside: tests pass a fake clientset and a
// local listener.
type Deps struct {
	Client   kubernetes.Interface
	Listener net.Listener
	Version  string
}

// shutdownTimeout bounds the graceful shutdown of the HTTP server.
const shutdownTimeout = 5 * time.Second

// Serve serves the extender on d.Listener until ctx ends. Serving starts at
// once (liveness, and /readyz saying why not ready), but the verbs are
// answered only after the readiness gate passes: the informers have synced
// and the cache is built.
func Serve(ctx context.Context, o *Options, d Deps) error {
	logger := klog.FromContext(ctx)
	policies, err := o.Policies()
	if err != nil {
		return err
	}
	factory, nodeInf, podInf, err := newInformers(d.Client)
	if err != nil {
		return err
	}
	c := cache.New(logger, o.SliceMiB, o.ReservationTTL)
	go c.Run(ctx)
	cacheBuilt, err := c.AddEventHandlers(nodeInf, podInf)
	if err != nil {
		return err
	}
	ready := extender.NewReadiness(false)
	ext := extender.NewExtender(c, policies, d.Client, factory.Core().V1().Pods().Lister(), clock.RealClock{}, o.Pending)
	srv := &http.Server{
		Handler:           extender.NewHandler(logger, ext, ready, d.Version, o.MaxBodyBytes),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if o.TLSCertFile != "" {
			err = srv.ServeTLS(d.Listener, o.TLSCertFile, o.TLSKeyFile)
		} else {
			err = srv.Serve(d.Listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	logger.Info("Serving the gpuslice extender; verbs wait for the caches", "address", d.Listener.Addr().String(), "policy", policies.For("").Name(), "profilePolicies", policies.Describe(), "sliceMiB", o.SliceMiB, "version", d.Version)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !toolscache.WaitForCacheSync(ctx.Done(), nodeInf.HasSynced, podInf.HasSynced, cacheBuilt) {
		_ = srv.Close()
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("informer caches did not sync")
	}
	ready.SetSynced(true)
	logger.Info("Informer caches synced and cache built; ready")
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down server: %w", err)
	}
	return nil
}
