package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/gpuslice/gpuslice/scheduler/cache"
	"github.com/gpuslice/gpuslice/scheduler/extender"
	"github.com/gpuslice/gpuslice/scheduler/metrics"
)

// Deps are what Serve needs from outside: tests pass a fake clientset and a
// local listener.
type Deps struct {
	Client   kubernetes.Interface
	Listener net.Listener
	Version  string
	// Identity names this replica in the leader Lease; empty: hostname and
	// a random suffix.
	Identity string
	// MetricsListener, when set, serves GET /metrics alone over plain
	// HTTP (--metrics-listen-address).
	MetricsListener net.Listener
}

// eventsComponent is the reporting controller of the extender's events.
const eventsComponent = "gpuslice-extender"

// shutdownTimeout bounds the graceful shutdown of the HTTP server.
const shutdownTimeout = 5 * time.Second

// Serve serves the extender on d.Listener until ctx ends. Serving starts at
// once (liveness, and /readyz saying why not ready), but the verbs are
// answered only after the readiness gate passes: this replica leads (with
// leader election; the caches are loaded only then, so a new leader decides
// on a fresh list), the informers have synced, and the cache is built. A
// leader that loses its Lease returns an error, so the process restarts as a
// follower.
func Serve(ctx context.Context, o *Options, d Deps) error {
	logger := klog.FromContext(ctx)
	policies, err := o.Policies()
	if err != nil {
		return err
	}
	modes, err := o.RuntimeClassModes()
	if err != nil {
		return err
	}
	tlsConfig, err := serverTLS(o)
	if err != nil {
		return err
	}
	factory, nodeInf, podInf, boundPods, err := newInformers(d.Client)
	if err != nil {
		return err
	}
	defer factory.Shutdown()
	c := cache.New(logger, o.SliceMiB, o.ReservationTTL)
	go c.Run(ctx)
	cacheBuilt, err := c.AddEventHandlers(nodeInf, podInf)
	if err != nil {
		return err
	}
	ready := extender.NewReadiness(o.LeaderElection.Enabled)
	m := metrics.New(metrics.Source{Cache: c, Ready: func() bool { return ready.Check() == nil }, Policies: policies.All(), UnplaceableReasons: extender.UnplaceableReasons()})
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: d.Client.EventsV1()})
	if err := broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return fmt.Errorf("start event recording: %w", err)
	}
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, eventsComponent)
	clk := clock.RealClock{}
	ext := extender.NewExtender(c, policies, d.Client, boundPods, clk, o.Pending,
		extender.WithMetrics(m), extender.WithEvents(recorder, o.PodEventInterval), extender.WithRuntimeClassModes(modes), extender.WithShortlist(o.FilterShortlist))
	handler := extender.NewHandler(logger, ext, ready, extender.HandlerOptions{
		Version:             d.Version,
		MaxBodyBytes:        o.MaxBodyBytes,
		MaxConcurrentBodies: o.MaxConcurrentBodies,
		RequireClientCert:   o.ClientCAFile != "",
		Metrics:             m,
		Profiling:           o.Profiling,
	})
	srv := newHTTPServer(ctx, handler, tlsConfig, defaultServerTimeouts())
	serveErr := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener, tlsConfig *tls.Config) {
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}
	go serve(srv, d.Listener, tlsConfig)
	var metricsSrv *http.Server
	if d.MetricsListener != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		metricsSrv = newHTTPServer(ctx, mux, nil, defaultServerTimeouts())
		go serve(metricsSrv, d.MetricsListener, nil)
		logger.Info("Serving /metrics without client authentication on a second listener", "address", d.MetricsListener.Addr().String())
	}
	if o.Unauthenticated() {
		logger.Info("Warning: serving without client authentication on a non-loopback address (--allow-unauthenticated); anyone who reaches it may call filter and bind", "address", o.ListenAddress)
	}
	logger.Info("Serving the gpuslice extender; verbs wait for readiness", "address", d.Listener.Addr().String(), "https", tlsConfig != nil, "clientAuth", o.ClientCAFile != "", "leaderElect", o.LeaderElection.Enabled, "policy", policies.For("").Name(), "profilePolicies", policies.Describe(), "runtimeClassIsolation", modes, "sliceMiB", o.SliceMiB, "version", d.Version)

	loadCaches := func(ctx context.Context) error {
		factory.Start(ctx.Done())
		if !toolscache.WaitForCacheSync(ctx.Done(), nodeInf.HasSynced, podInf.HasSynced, cacheBuilt) {
			return errors.New("informer caches did not sync")
		}
		ready.SetSynced(true)
		klog.FromContext(ctx).Info("Informer caches synced and cache built; ready")
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		if o.LeaderElection.Enabled {
			runErr <- lead(runCtx, o.LeaderElection, d, ready, loadCaches)
			return
		}
		if err := loadCaches(runCtx); err != nil && runCtx.Err() == nil {
			runErr <- err
		}
	}()

	var result error
	electorDone := !o.LeaderElection.Enabled
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			result = fmt.Errorf("serve: %w", err)
		}
	case err := <-runErr:
		result, electorDone = err, true
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil && result == nil {
		result = fmt.Errorf("shut down server: %w", err)
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(shutdownCtx); err != nil && result == nil {
			result = fmt.Errorf("shut down metrics server: %w", err)
		}
	}
	if !electorDone {
		// Wait for the elector to release the Lease; a failure after the
		// shutdown began adds nothing to the result.
		if err := <-runErr; err != nil && result == nil && ctx.Err() == nil {
			result = err
		}
	}
	return result
}
