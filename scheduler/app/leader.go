package app

import (
	"errors"
	"time"

	"github.com/spf13/pflag"
)

// LeaderElection configures running the extender as one of several
// replicas: one, the holder of a coordination.k8s.io Lease, answers the
// verbs; the others answer them with the retryable "not ready" and fail
// /readyz, so a Service routes kube-scheduler to the leader.
type LeaderElection struct {
	// Enabled turns leader election on.
	Enabled bool
	// Namespace and LeaseName name the Lease.
	Namespace, LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// leaderelection timings.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity names this replica in the Lease; empty: the hostname and a
	// random suffix (Deps.Identity wins over it).
	Identity string
}

// DefaultLeaderElection returns the defaults (off; kube-scheduler's
// timings).
func DefaultLeaderElection() LeaderElection {
	return LeaderElection{
		Namespace:     "gpuslice-system",
		LeaseName:     "gpuslice-extender",
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}
}

// AddFlags registers the leader-election flags.
func (l *LeaderElection) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&l.Enabled, "leader-elect", l.Enabled, "Run as one of several replicas: only the holder of the Lease answers the verbs; the others answer 503 (retryable) and fail /readyz.")
	fs.StringVar(&l.Namespace, "leader-elect-namespace", l.Namespace, "Namespace of the leader-election Lease.")
	fs.StringVar(&l.LeaseName, "leader-elect-lease-name", l.LeaseName, "Name of the leader-election Lease.")
	fs.DurationVar(&l.LeaseDuration, "leader-elect-lease-duration", l.LeaseDuration, "How long followers wait after the last renewal before taking the Lease.")
	fs.DurationVar(&l.RenewDeadline, "leader-elect-renew-deadline", l.RenewDeadline, "How long the leader retries renewing before it gives up leading.")
	fs.DurationVar(&l.RetryPeriod, "leader-elect-retry-period", l.RetryPeriod, "How often candidates try to take or renew the Lease.")
	fs.StringVar(&l.Identity, "leader-elect-identity", l.Identity, "This replica's name in the Lease (holderIdentity). Empty: the hostname and a random suffix. Give every process its own: a process that finds its own name in the Lease leads at once.")
}

// Validate checks the leader-election options.
func (l *LeaderElection) Validate() error {
	if !l.Enabled {
		return nil
	}
	var errs []error
	if l.Namespace == "" || l.LeaseName == "" {
		errs = append(errs, errors.New("--leader-elect-namespace and --leader-elect-lease-name must not be empty"))
	}
	if l.RetryPeriod <= 0 || l.RenewDeadline <= l.RetryPeriod || l.LeaseDuration <= l.RenewDeadline {
		errs = append(errs, errors.New("leader election needs 0 < --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration"))
	}
	return errors.Join(errs...)
}
