package app

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/scheduler/extender"
)

// Options configures the extender. NewOptions sets the defaults; AddFlags
// binds them to flags; after parsing, Complete, Validate and Run follow.
type Options struct {
	// Kubeconfig is the path of a kubeconfig; empty means in-cluster.
	Kubeconfig string
	// ListenAddress is host:port of the HTTP(S) server.
	ListenAddress string
	// TLSCertFile and TLSKeyFile switch the server to HTTPS when both are set.
	TLSCertFile, TLSKeyFile string
	// ClientCAFile is a PEM CA bundle; when set, the verbs are answered only
	// to callers presenting a client certificate it signed (mutual TLS).
	ClientCAFile string
	// AllowUnauthenticated allows serving on a non-loopback address without
	// ClientCAFile (a warning is logged).
	AllowUnauthenticated bool
	// SliceMiB is the cluster-wide gpu-mem slice size.
	SliceMiB int64
	// Policy is the default placement policy name (allocator.PolicyNames).
	Policy string
	// ProfilePolicies maps a kube-scheduler profile (a pod's
	// spec.schedulerName) to the policy its pods are placed with.
	ProfilePolicies map[string]string
	// PolicyConfig is a file with the default policy and the per-profile
	// policies (PolicyConfig); flags override it.
	PolicyConfig string
	// QPS and Burst bound the API client. A bind costs one call, so the
	// defaults are high: client-go's default of 5 QPS caps binding at 5
	// pods/s.
	QPS   float32
	Burst int
	// ReservationTTL is how long an assumed placement lives without the
	// informer confirming it.
	ReservationTTL time.Duration
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// MaxConcurrentBodies bounds the request bodies decoded at once.
	MaxConcurrentBodies int
	// LeaderElection runs the extender as one of several replicas.
	LeaderElection LeaderElection
	// Pending bounds what the extender remembers of filtered pods until
	// their bind.
	Pending extender.PendingLimits
	// MetricsListenAddress, when set, serves GET /metrics alone on a
	// second, plain-HTTP listener, for a Prometheus without a client
	// certificate. Empty: /metrics only on ListenAddress, behind the
	// verbs' authentication.
	MetricsListenAddress string
	// Profiling serves Go's pprof profiles on GET /debug/pprof/ of
	// ListenAddress, behind the verbs' client authentication.
	Profiling bool
	// PodEventInterval is how often at most one reason is recorded as an
	// event on one pod (and logged at the default verbosity).
	PodEventInterval time.Duration
	// RuntimeClassIsolation maps RuntimeClasses to the VM-sandbox isolation
	// mode their pods need, as "name=mode,..." (api.ParseRuntimeClassModes,
	// modes vgpu and passthrough): those pods are placed on GPUs of that
	// mode only, every other pod on GPUs of shared modes only.
	RuntimeClassIsolation string
	// FilterShortlist is the most feasible nodes filter answers with, the
	// policy's best (extender.WithShortlist); 0: every feasible node.
	FilterShortlist int
	// Logs holds the component-base logging flags.
	Logs *logsapi.LoggingConfiguration

	// policyFlagSet records that --policy was given on the command line,
	// so it overrides the policy config file (set by Complete).
	policyFlagSet bool
}

// NewOptions returns the default options.
func NewOptions() *Options {
	return &Options{
		ListenAddress:  ":8888",
		SliceMiB:       api.DefaultSliceMiB,
		Policy:         allocator.PolicyBinpack,
		QPS:            500,
		Burst:          1000,
		ReservationTTL: 2 * time.Minute,
		MaxBodyBytes:   extender.DefaultMaxBodyBytes,
		Pending:        extender.DefaultPendingLimits(),

		PodEventInterval: extender.DefaultEventInterval,
		FilterShortlist:  extender.DefaultShortlist,

		MaxConcurrentBodies: extender.DefaultMaxConcurrentBodies,
		LeaderElection:      DefaultLeaderElection(),
		Logs:                logsapi.NewLoggingConfiguration(),
	}
}

// AddFlags registers the options on a flag set.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig. Empty: in-cluster configuration.")
	fs.StringVar(&o.ListenAddress, "listen-address", o.ListenAddress, "Address (host:port) the extender serves on.")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "Serving certificate; with --tls-private-key-file enables HTTPS.")
	fs.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "Serving key.")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "PEM CA bundle; when set, the server requires and verifies client certificates (mutual TLS) for filter, prioritize, preempt and bind. Needs --tls-cert-file.")
	fs.BoolVar(&o.AllowUnauthenticated, "allow-unauthenticated", o.AllowUnauthenticated, "Allow serving on a non-loopback address without --client-ca-file: anyone who reaches the port may call bind. A warning is logged.")
	fs.Int64Var(&o.SliceMiB, "slice-mib", o.SliceMiB, fmt.Sprintf("Cluster-wide gpu-mem slice size in MiB (at least %d).", api.MinSliceMiB))
	fs.StringVar(&o.Policy, "policy", o.Policy, fmt.Sprintf("Default placement policy, one of %v.", allocator.PolicyNames()))
	fs.StringToStringVar(&o.ProfilePolicies, "profile-policy", o.ProfilePolicies, "Placement policy per kube-scheduler profile, as schedulerName=policy (repeatable).")
	fs.StringVar(&o.PolicyConfig, "policy-config", o.PolicyConfig, "YAML file with the default policy and a policy per kube-scheduler profile ({policy: ..., profiles: {name: policy}}); --policy and --profile-policy given on the command line override it.")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "QPS of the API client.")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "Burst of the API client.")
	fs.DurationVar(&o.ReservationTTL, "reservation-ttl", o.ReservationTTL, "How long an assumed placement lives unless the informer confirms it.")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", o.MaxBodyBytes, "Largest request body accepted (the default fits node-names-only calls at 15,000 nodes).")
	fs.IntVar(&o.MaxConcurrentBodies, "max-concurrent-bodies", o.MaxConcurrentBodies, "Most request bodies read and decoded at once; more answer 429 (retryable).")
	fs.StringVar(&o.MetricsListenAddress, "metrics-listen-address", o.MetricsListenAddress, "Address (host:port) of a second, plain-HTTP listener that serves GET /metrics only, for a Prometheus without a client certificate. Empty: /metrics is served on --listen-address only, behind the same client authentication as the verbs.")
	fs.StringVar(&o.RuntimeClassIsolation, "runtime-class-isolation", o.RuntimeClassIsolation, "RuntimeClasses whose pods run in VM sandboxes, with the GPU isolation mode they need, as name=mode[,name=mode...] (modes: vgpu, passthrough), e.g. kata-vgpu=vgpu,kubevirt=passthrough. Their pods are placed only on GPUs of that mode; every other pod only on GPUs of shared modes (none, mps).")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "Serve Go's pprof profiles on GET /debug/pprof/ of --listen-address, behind the same client authentication as the verbs (go tool pprof https://HOST/debug/pprof/profile with the client certificate).")
	fs.DurationVar(&o.PodEventInterval, "pod-event-interval", o.PodEventInterval, "Most often one event reason (no node can place the pod, invalid request, failed bind) is recorded on one pod and logged at the default verbosity.")
	fs.IntVar(&o.FilterShortlist, "filter-shortlist", o.FilterShortlist, "Most feasible nodes filter answers with: the placement policy's best, after fitting the pod on every node kube-scheduler sent. kube-scheduler then scores and prioritizes only these (far less work per pod on a large cluster); a node outside them cannot win on kube-scheduler's own soft preferences. 0: every feasible node.")
	o.LeaderElection.AddFlags(fs)
	fs.DurationVar(&o.Pending.TTL, "pending-pod-ttl", o.Pending.TTL, "How long a filter's outcome stays valid: /bind accepts only a (pod UID, node) pair this process filtered and found feasible within this time.")
	fs.IntVar(&o.Pending.MaxPods, "max-pending-pods", o.Pending.MaxPods, "Most filtered pods remembered for bind; the oldest filter is dropped first (its bind fails and kube-scheduler retries the pod).")
	fs.IntVar(&o.Pending.MaxNodes, "max-pending-nodes", o.Pending.MaxNodes, "Most feasible node names remembered over all filtered pods (bounds the memory of --max-pending-pods).")
	logsapi.AddFlags(o.Logs, fs)
}

// Complete fills in what depends on how the flags were parsed: whether
// --policy was given explicitly (then it overrides --policy-config).
func (o *Options) Complete(fs *pflag.FlagSet) {
	o.policyFlagSet = fs.Changed("policy")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(o.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("--listen-address %q: %w", o.ListenAddress, err))
	}
	if o.MetricsListenAddress != "" {
		if _, _, err := net.SplitHostPort(o.MetricsListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen-address %q: %w", o.MetricsListenAddress, err))
		}
	}
	if o.PodEventInterval <= 0 {
		errs = append(errs, errors.New("--pod-event-interval must be positive"))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file must be given together"))
	}
	if o.ClientCAFile != "" && o.TLSCertFile == "" {
		errs = append(errs, errors.New("--client-ca-file needs HTTPS: give --tls-cert-file and --tls-private-key-file"))
	}
	if o.ClientCAFile == "" && !o.AllowUnauthenticated && !isLoopback(o.ListenAddress) {
		errs = append(errs, fmt.Errorf("--listen-address %q is not a loopback address: give --client-ca-file so callers are authenticated, or --allow-unauthenticated", o.ListenAddress))
	}
	if o.SliceMiB < api.MinSliceMiB {
		errs = append(errs, fmt.Errorf("--slice-mib %d is below the minimum of %d", o.SliceMiB, api.MinSliceMiB))
	}
	if _, err := o.Policies(); err != nil {
		errs = append(errs, err)
	}
	if _, err := o.RuntimeClassModes(); err != nil {
		errs = append(errs, err)
	}
	if o.QPS <= 0 || o.Burst <= 0 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	if o.ReservationTTL <= 0 {
		errs = append(errs, errors.New("--reservation-ttl must be positive"))
	}
	if o.MaxBodyBytes <= 0 || o.MaxConcurrentBodies <= 0 {
		errs = append(errs, errors.New("--max-body-bytes and --max-concurrent-bodies must be positive"))
	}
	errs = append(errs, o.LeaderElection.Validate())
	if o.FilterShortlist < 0 {
		errs = append(errs, fmt.Errorf("--filter-shortlist must be 0 (all) or positive, got %d", o.FilterShortlist))
	}
	if o.Pending.TTL <= 0 || o.Pending.MaxPods <= 0 || o.Pending.MaxNodes <= 0 {
		errs = append(errs, errors.New("--pending-pod-ttl, --max-pending-pods and --max-pending-nodes must be positive"))
	}
	return errors.Join(errs...)
}

// Policies resolves the default and per-profile policies from the flags and
// the policy config file. Flags given on the command line win (see
// Complete).
func (o *Options) Policies() (*extender.Policies, error) {
	def, profiles := o.Policy, map[string]string{}
	if o.PolicyConfig != "" {
		c, err := extender.LoadPolicyConfig(o.PolicyConfig)
		if err != nil {
			return nil, err
		}
		if c.Policy != "" && !o.policyFlagSet {
			def = c.Policy
		}
		for k, v := range c.Profiles {
			profiles[k] = v
		}
	}
	for k, v := range o.ProfilePolicies {
		profiles[k] = v
	}
	ps, err := extender.NewPolicies(def, profiles)
	if err != nil {
		return nil, fmt.Errorf("placement policy: %w", err)
	}
	return ps, nil
}

// RuntimeClassModes parses --runtime-class-isolation.
func (o *Options) RuntimeClassModes() (api.RuntimeClassModes, error) {
	m, err := api.ParseRuntimeClassModes(o.RuntimeClassIsolation)
	if err != nil {
		return nil, fmt.Errorf("--runtime-class-isolation %q: %w", o.RuntimeClassIsolation, err)
	}
	return m, nil
}

// Unauthenticated reports whether the verbs are served without client
// authentication on an address others can reach (Run logs a warning).
func (o *Options) Unauthenticated() bool {
	return o.ClientCAFile == "" && !isLoopback(o.ListenAddress)
}

// isLoopback reports whether a host:port listens on loopback only. An empty
// host listens on every interface.
func isLoopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
