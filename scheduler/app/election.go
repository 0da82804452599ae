package app

import (
	"context"
	"errors"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/scheduler/extender"
)

// errLostLease is returned when this replica stops leading while it should
// still run.
var errLostLease = errors.New("lost the leader Lease")

// lead campaigns for the Lease until ctx ends. On winning it marks the gate
// leading and loads the caches (start); on losing it closes the gate at
// once and returns errLostLease. When ctx ends it releases the Lease, so a
// follower takes over without waiting for the lease to run out.
func lead(ctx context.Context, l LeaderElection, d Deps, ready *extender.Readiness, start func(context.Context) error) error {
	logger := klog.FromContext(ctx)
	id := d.Identity
	if id == "" {
		id = l.Identity
	}
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("leader election identity: %w", err)
		}
		id = host + "_" + string(uuid.NewUUID())
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, l.Namespace, l.LeaseName,
		d.Client.CoreV1(), d.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return fmt.Errorf("leader election lock: %w", err)
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   l.LeaseDuration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				logger.Info("Leading; loading the caches before answering", "identity", id)
				ready.SetLeading(true)
				if err := start(ctx); err != nil && ctx.Err() == nil {
					logger.Error(err, "Loading the caches failed")
				}
			},
			OnStoppedLeading: func() {
				ready.SetLeading(false)
				logger.Info("Stopped leading", "identity", id)
			},
			OnNewLeader: func(holder string) {
				if holder != id {
					logger.Info("Following", "leader", holder)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return errLostLease
}
