package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// Options configures a cluster. The zero value is usable.
type Options struct {
	// K8sBin is the directory with etcd, kube-apiserver and kube-scheduler.
	// Default: $K8S_BIN, else <repo>/e2e/bin.
	K8sBin string
	// GPUSliceBin is the directory with gpuslice-extender. Default:
	// $GPUSLICE_BIN, else <repo>/bin.
	GPUSliceBin string
	// RepoRoot is the gpuslice checkout (for manifests/). Default: the first
	// directory above the working directory that has
	// manifests/scheduler-config.yaml.
	RepoRoot string
	// SliceMiB is the extender's --slice-mib (default api.DefaultSliceMiB).
	SliceMiB int64
	// Policy is the extender's --policy (default binpack, or with
	// ShippedPolicy the install manifest's).
	Policy string
	// ShippedPolicy runs the extender with the --policy of the extender
	// container of manifests/deploy/gpuslice.yaml (the chart's
	// extender.policy) when Policy is empty, as make bench-scale measures
	// it.
	ShippedPolicy bool
	// ExtenderArgs are appended to the extender's command line.
	ExtenderArgs []string
	// ShippedEnv starts every extender with the literal environment
	// variables of the extender container of manifests/deploy/gpuslice.yaml
	// (GOMEMLIMIT), as make bench-scale measures it; variables taken from
	// a ConfigMap or Secret are left out (the command line carries them).
	ShippedEnv bool
	// HA runs the extender as several replicas with leader election behind
	// a Front that kube-scheduler calls (see HAOptions). The zero value runs
	// one extender, without leader election, that kube-scheduler calls
	// directly.
	HA HAOptions
	// WithoutScheduler starts etcd and kube-apiserver only (no extender, no
	// kube-scheduler), e.g. for device plugin tests.
	WithoutScheduler bool
	// StartTimeout bounds each readiness wait (default 90s).
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL
	// (default 5s).
	StopGrace time.Duration
	// KeepDir keeps the temporary directory (logs, etcd data, kubeconfigs)
	// after Stop. $GPUSLICE_E2E_KEEP=1 does the same.
	KeepDir bool
	// NoSignalHandler leaves SIGINT and SIGTERM to the caller, which must
	// then call Stop itself (the demo does). By default the cluster installs
	// a handler that stops it and re-raises the signal.
	NoSignalHandler bool
	// Logf receives the harness's progress lines (default klog.Infof).
	Logf func(format string, args ...any)
}

// Component names, also the log file names (DIR/<name>.log).
const (
	Etcd          = "etcd"
	KubeAPIServer = "kube-apiserver"
	Extender      = "gpuslice-extender"
	KubeScheduler = "kube-scheduler"
)

// Cluster is a running local control plane.
type Cluster struct {
	// Client is an admin (system:masters) clientset.
	Client kubernetes.Interface
	// RESTConfig is the admin client configuration (QPS 500, burst 1000).
	RESTConfig *rest.Config
	// KubeconfigPath is an admin kubeconfig file, for kubectl.
	KubeconfigPath string
	// Dir is the cluster's temporary directory (logs are DIR/<name>.log).
	Dir string
	// APIServerURL is https://127.0.0.1:PORT.
	APIServerURL string
	// ExtenderURL is https://127.0.0.1:PORT/, as kube-scheduler calls it
	// (mutual TLS: see ExtenderTLS).
	ExtenderURL string
	// ExtenderTLS is the extender's serving certificate, kube-scheduler's
	// client certificate and the CA of both.
	ExtenderTLS *ExtenderTLS
	// ExtenderConfig and ExtenderClient authenticate as the extender's
	// service account (gpuslice-system/gpuslice-extender), with a token from
	// the TokenRequest API; the extender itself runs with the same identity.
	ExtenderConfig *rest.Config
	ExtenderClient kubernetes.Interface
	// DevicePluginConfig and DevicePluginClient authenticate as the device
	// plugin's service account (gpuslice-system/gpuslice-device-plugin); the
	// e2e tests run the plugin in process with this client.
	DevicePluginConfig *rest.Config
	DevicePluginClient kubernetes.Interface
	// SliceMiB is the extender's slice size.
	SliceMiB int64

	opts         Options
	logf         func(string, ...any)
	k8sBin       string
	gpusliceBin  string
	repoRoot     string
	extenderAddr string
	extenderKube string
	sp           *spawner
	front        *Front
	replicaAddrs map[string]string

	mu    sync.Mutex // guards procs, stopped and the replica maps below
	procs map[string]*process
	// launches counts each replica's launches, held marks the replicas
	// KillReplica killed (not restarted by the supervisor), restarts counts
	// the supervisor's restarts.
	launches map[string]int
	held     map[string]bool
	restarts map[string]int
	order    []string // start order; stopped in reverse
	stopped  bool
	stopCh   chan struct{}
}

// Start starts a cluster for a test and registers Stop with t.Cleanup. It
// fails the test (t.Fatal) when the cluster cannot start; it never skips.
// On test failure the cleanup logs the tail of every component's log.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.DumpLogs(t.Logf, 40)
		}
		c.Stop()
	})
	return c
}

// New starts a cluster. The caller must call Stop (also on error paths
// after New returned a cluster). ctx bounds the start only.
func New(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.SliceMiB == 0 {
		opts.SliceMiB = 1024
	}
	if opts.Policy == "" && !opts.ShippedPolicy {
		opts.Policy = "binpack"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = klog.Infof
	}
	if os.Getenv("GPUSLICE_E2E_KEEP") == "1" {
		opts.KeepDir = true
	}
	c = &Cluster{opts: opts, logf: opts.Logf, SliceMiB: opts.SliceMiB, procs: map[string]*process{}, stopCh: make(chan struct{})}
	if err := c.resolvePaths(); err != nil {
		return nil, err
	}
	c.Dir, err = os.MkdirTemp("", "gpuslice-e2e-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	c.sp = newSpawner()
	if !opts.NoSignalHandler {
		c.handleSignals()
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs in %s)", err, c.Dir)
			c.opts.KeepDir = true
			c.Stop()
			c = nil
		}
	}()
	begin := time.Now()
	if err := c.startControlPlane(ctx); err != nil {
		return c, err
	}
	if !opts.WithoutScheduler {
		start := c.StartExtender
		if opts.HA.enabled() {
			start = c.startReplicas
		}
		if err := start(ctx); err != nil {
			return c, err
		}
		if err := c.startScheduler(ctx); err != nil {
			return c, err
		}
	}
	c.logf("harness: control plane ready in %v (dir %s)", time.Since(begin).Round(time.Millisecond), c.Dir)
	return c, nil
}

// resolveRoot finds the gpuslice checkout.
func (c *Cluster) resolveRoot() error {
	c.repoRoot = c.opts.RepoRoot
	if c.repoRoot == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "manifests", "scheduler-config.yaml")); err == nil {
				c.repoRoot = d
				break
			}
			if filepath.Dir(d) == d {
				return fmt.Errorf("no gpuslice checkout (manifests/scheduler-config.yaml) above %s: set Options.RepoRoot", wd)
			}
		}
	}
	return nil
}

// resolvePaths finds the binaries and the repository, and checks that every
// binary the cluster needs exists.
func (c *Cluster) resolvePaths() error {
	if err := c.resolveRoot(); err != nil {
		return err
	}
	if c.opts.Policy == "" {
		pol, err := ShippedExtenderPolicy(filepath.Join(c.repoRoot, ShippedDeployment))
		if err != nil {
			return err
		}
		c.opts.Policy = pol
	}
	pick := func(opt, env, def string) (string, error) {
		p := opt
		if p == "" {
			p = os.Getenv(env)
		}
		if p == "" {
			p = def
		}
		return filepath.Abs(p)
	}
	var err error
	if c.k8sBin, err = pick(c.opts.K8sBin, "K8S_BIN", filepath.Join(c.repoRoot, "e2e", "bin")); err != nil {
		return fmt.Errorf("K8S_BIN: %w", err)
	}
	if c.gpusliceBin, err = pick(c.opts.GPUSliceBin, "GPUSLICE_BIN", filepath.Join(c.repoRoot, "bin")); err != nil {
		return fmt.Errorf("GPUSLICE_BIN: %w", err)
	}
	var missing []string
	need := []string{filepath.Join(c.k8sBin, Etcd), filepath.Join(c.k8sBin, KubeAPIServer)}
	if !c.opts.WithoutScheduler {
		need = append(need, filepath.Join(c.k8sBin, KubeScheduler), filepath.Join(c.gpusliceBin, Extender))
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing binaries %s: run `make control-plane` (etcd, kube-apiserver, kube-scheduler into e2e/bin) and `make build` (gpuslice-extender into bin), or set K8S_BIN / GPUSLICE_BIN", strings.Join(missing, ", "))
	}
	return nil
}

// handleSignals stops the cluster on SIGINT or SIGTERM and re-raises the
// signal with the default action, so that an interrupted test run leaves
// nothing behind.
func (c *Cluster) handleSignals() {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sigc)
		select {
		case s := <-sigc:
			c.logf("harness: %v: stopping the control plane", s)
			c.Stop()
			signal.Stop(sigc)
			if sig, ok := s.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), sig)
			}
		case <-c.stopCh:
		}
	}()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

// run starts a component and records it for Stop.
func (c *Cluster) run(name, bin string, args []string, env ...string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("cluster is stopped")
	}
	p, err := startProcess(c.sp, name, bin, args, env, c.path(name+".log"))
	if err != nil {
		return nil, err
	}
	if _, ok := c.procs[name]; !ok {
		c.order = append(c.order, name)
	}
	c.procs[name] = p
	return p, nil
}

func (c *Cluster) proc(name string) *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// waitReady polls ready until it returns true, the process exits, or the
// start timeout passes.
func (c *Cluster) waitReady(ctx context.Context, p *process, ready func(context.Context) bool) error {
	begin := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		if !p.running() {
			return false, p.exitError()
		}
		return ready(ctx), nil
	})
	if err != nil {
		if !p.running() {
			return p.exitError()
		}
		return fmt.Errorf("%s not ready after %v: %w; last log lines:\n%s", p.name, time.Since(begin).Round(time.Millisecond), err, tailFile(p.logPath, 30))
	}
	c.logf("harness: %s ready in %v", p.name, time.Since(begin).Round(time.Millisecond))
	return nil
}

// httpOK reports whether GET url answers 200 within a second.
func httpOK(ctx context.Context, client *http.Client, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startControlPlane starts etcd and kube-apiserver, applies the RBAC
// manifest and writes the kubeconfigs.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := c.run(Etcd, filepath.Join(c.k8sBin, Etcd), []string{
		"--name=gpuslice-e2e",
		"--data-dir=" + c.path("etcd-data"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=gpuslice-e2e=" + peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	})
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, etcd, func(ctx context.Context) bool {
		return httpOK(ctx, http.DefaultClient, etcdURL+"/health")
	}); err != nil {
		return err
	}

	users := []user{
		{name: adminUser, groups: []string{"system:masters"}},
		{name: schedulerUser},
	}
	for i := range users {
		if users[i].token, err = newToken(); err != nil {
			return err
		}
	}
	if err := writeTokenFile(c.path("tokens.csv"), users); err != nil {
		return err
	}
	certFile, keyFile, caPEM, err := writeServingCert(c.Dir)
	if err != nil {
		return err
	}
	saPub, saKey, err := writeServiceAccountKeys(c.Dir)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	api, err := c.run(KubeAPIServer, filepath.Join(c.k8sBin, KubeAPIServer), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + certFile, "--tls-private-key-file=" + keyFile,
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		// No controller-manager creates default service accounts, and no
		// kubelet clears the not-ready taint of a new node.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	})
	if err != nil {
		return err
	}

	kubeconfigs := map[string]user{"admin.kubeconfig": users[0], "scheduler.kubeconfig": users[1]}
	for file, u := range kubeconfigs {
		if err := writeKubeconfig(c.path(file), c.APIServerURL, caPEM, u.name, u.token); err != nil {
			return err
		}
	}
	c.KubeconfigPath = c.path("admin.kubeconfig")
	if c.RESTConfig, err = clientcmd.BuildConfigFromFlags("", c.KubeconfigPath); err != nil {
		return fmt.Errorf("admin client config: %w", err)
	}
	c.RESTConfig.QPS, c.RESTConfig.Burst = 500, 1000
	c.RESTConfig.UserAgent = "gpuslice-e2e"
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	if err := c.waitReady(ctx, api, func(ctx context.Context) bool {
		// /readyz includes the RBAC bootstrap policy post-start hook.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	}); err != nil {
		return err
	}
	if err := c.applyManifest(ctx, filepath.Join(c.repoRoot, "manifests", "rbac.yaml")); err != nil {
		return err
	}
	if err := c.setUpIdentities(ctx, caPEM); err != nil {
		return err
	}
	return c.applyAdmissionPolicy(ctx)
}

// StartExtender starts the gpuslice extender (again, after KillExtender)
// on the cluster's extender address and waits until its /readyz answers
// 200, i.e. until its informer caches have synced.
func (c *Cluster) StartExtender(ctx context.Context) error {
	if err := c.LaunchExtender(); err != nil {
		return err
	}
	return c.WaitExtenderReady(ctx)
}

// LaunchExtender starts the extender and returns at once, without waiting
// for it to be ready: kube-scheduler may call it before its caches are
// loaded, which is what a restart test needs. WaitExtenderReady waits.
func (c *Cluster) LaunchExtender() error {
	if c.opts.HA.enabled() {
		return errors.New("the cluster runs extender replicas (Options.HA): use LaunchReplica")
	}
	if c.extenderAddr == "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.extenderAddr = "127.0.0.1:" + strconv.Itoa(port)
		c.ExtenderURL = "https://" + c.extenderAddr + "/"
		if err := c.ensureExtenderTLS(); err != nil {
			return err
		}
	}
	if p := c.proc(Extender); p != nil && p.running() {
		return errors.New("extender is already running")
	}
	env, err := c.extenderEnv()
	if err != nil {
		return err
	}
	_, err = c.run(Extender, filepath.Join(c.gpusliceBin, Extender), c.extenderArgs(c.extenderAddr), env...)
	return err
}

// ensureExtenderTLS makes the extender's mutual TLS material once.
func (c *Cluster) ensureExtenderTLS() error {
	if c.ExtenderTLS != nil {
		return nil
	}
	x, err := writeExtenderTLS(c.Dir)
	if err != nil {
		return err
	}
	if x.ClientAuth, err = c.extenderHasFlag("--client-ca-file"); err != nil {
		return err
	}
	if !x.ClientAuth {
		c.logf("harness: WARNING: %s has no --client-ca-file: serving TLS without client authentication", Extender)
	}
	c.ExtenderTLS = x
	return nil
}

// extenderArgs is the extender's command line for serving on addr.
func (c *Cluster) extenderArgs(addr string) []string {
	args := []string{
		"--kubeconfig=" + c.extenderKube,
		"--listen-address=" + addr,
		"--tls-cert-file=" + c.ExtenderTLS.ServingCert,
		"--tls-private-key-file=" + c.ExtenderTLS.ServingKey,
	}
	if c.ExtenderTLS.ClientAuth {
		args = append(args, "--client-ca-file="+c.ExtenderTLS.CAFile)
	}
	args = append(args,
		"--slice-mib="+strconv.FormatInt(c.SliceMiB, 10),
		"--policy="+c.opts.Policy,
		"--kube-api-qps=500", "--kube-api-burst=1000",
		"--reservation-ttl=2m",
		"-v=2",
	)
	return append(args, c.opts.ExtenderArgs...)
}

// WaitExtenderReady waits until the running extender's /readyz answers
// 200 (over mutual TLS, with kube-scheduler's client certificate).
func (c *Cluster) WaitExtenderReady(ctx context.Context) error {
	p := c.proc(Extender)
	if p == nil {
		return errors.New("extender was never started")
	}
	cert, err := c.ExtenderTLS.SchedulerCert()
	if err != nil {
		return err
	}
	client := c.ExtenderTLS.HTTPClient(cert)
	defer client.CloseIdleConnections()
	return c.waitReady(ctx, p, func(ctx context.Context) bool {
		return httpOK(ctx, client, c.ExtenderURL+"readyz")
	})
}

// extenderHasFlag reports whether the extender binary knows a flag (its
// --help lists it).
func (c *Cluster) extenderHasFlag(flag string) (bool, error) {
	out, _ := exec.Command(filepath.Join(c.gpusliceBin, Extender), "--help").CombinedOutput()
	if !strings.Contains(string(out), "--") {
		return false, fmt.Errorf("%s --help printed no flags: %s", Extender, out)
	}
	return strings.Contains(string(out), flag+" ") || strings.Contains(string(out), flag+"="), nil
}

// ExtenderAddr returns the extender's host:port.
func (c *Cluster) ExtenderAddr() string { return c.extenderAddr }

// KillExtender SIGKILLs the extender and waits until it is gone.
func (c *Cluster) KillExtender() error {
	p := c.proc(Extender)
	if p == nil || !p.running() {
		return errors.New("extender is not running")
	}
	p.stop(0)
	c.logf("harness: extender killed (SIGKILL)")
	return nil
}

// RestartExtender SIGKILLs the extender, starts it again on the same
// address and waits until it is ready.
func (c *Cluster) RestartExtender(ctx context.Context) error {
	if err := c.KillExtender(); err != nil {
		return err
	}
	return c.StartExtender(ctx)
}

// Running reports whether the named component (Etcd, KubeAPIServer,
// Extender, KubeScheduler) is running.
func (c *Cluster) Running(name string) bool {
	p := c.proc(name)
	return p != nil && p.running()
}

// Pids returns the process ids of the components started so far (running
// or not), for leak checks.
func (c *Cluster) Pids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.procs))
	for n, p := range c.procs {
		out[n] = p.cmd.Process.Pid
	}
	return out
}

// RepoRoot returns the gpuslice checkout the cluster reads manifests from.
func (c *Cluster) RepoRoot() string { return c.repoRoot }

// KubectlPath returns the kubectl next to the control-plane binaries (built
// by `make control-plane`; it may be absent when only the tests' binaries
// were built).
func (c *Cluster) KubectlPath() string { return filepath.Join(c.k8sBin, "kubectl") }

// LogPath returns the log file of a component.
func (c *Cluster) LogPath(name string) string { return c.path(name + ".log") }

// DumpLogs writes the last n lines of every component's log to logf.
func (c *Cluster) DumpLogs(logf func(string, ...any), n int) {
	c.mu.Lock()
	names := append([]string(nil), c.order...)
	c.mu.Unlock()
	for _, name := range names {
		logf("===== last %d lines of %s =====\n%s", n, c.LogPath(name), tailFile(c.LogPath(name), n))
	}
}

// Stop stops every component (in reverse start order), waits for each
// process group to exit, and removes the temporary directory unless
// Options.KeepDir is set. It is safe to call more than once and from
// several goroutines.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	close(c.stopCh)
	procs := make([]*process, 0, len(c.order))
	for i := len(c.order) - 1; i >= 0; i-- {
		procs = append(procs, c.procs[c.order[i]])
	}
	c.mu.Unlock()

	for _, p := range procs {
		p.stop(c.opts.StopGrace)
	}
	if c.front != nil {
		c.front.Close()
	}
	if c.sp != nil {
		c.sp.close()
	}
	if c.opts.KeepDir {
		c.logf("harness: stopped; logs kept in %s", c.Dir)
		return
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		c.logf("harness: remove %s: %v", c.Dir, err)
	}
}
