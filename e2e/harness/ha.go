package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// HAOptions runs the extender as the chart does: Replicas processes with
// leader election on a Lease (gpuslice-system/gpuslice-extender, with
// these timings), of which only the leader answers the verbs, behind a
// Front that routes kube-scheduler's connections to the ready one.
type HAOptions struct {
	// Replicas is the number of extender replicas; 2 or more turn HA on.
	Replicas int
	// LeaseDuration, RenewDeadline and RetryPeriod are the replicas'
	// --leader-elect-* timings (defaults 4s, 3s, 500ms: short, for tests;
	// the chart ships kube-scheduler's 15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ProbePeriod is how often the Front probes each replica's /readyz
	// (default 500ms; the chart's readinessProbe uses 2s).
	ProbePeriod time.Duration
}

// LeaseName is the Lease the replicas elect their leader on.
const LeaseName = "gpuslice-extender"

func (h HAOptions) enabled() bool { return h.Replicas > 1 }

func (h HAOptions) withDefaults() HAOptions {
	if h.LeaseDuration == 0 {
		h.LeaseDuration = 4 * time.Second
	}
	if h.RenewDeadline == 0 {
		h.RenewDeadline = 3 * time.Second
	}
	if h.RetryPeriod == 0 {
		h.RetryPeriod = 500 * time.Millisecond
	}
	if h.ProbePeriod == 0 {
		h.ProbePeriod = 500 * time.Millisecond
	}
	return h
}

// HA returns the HA options in force (defaults filled in).
func (c *Cluster) HA() HAOptions { return c.opts.HA.withDefaults() }

// ReplicaName is the component (and log file) name of extender replica i.
func ReplicaName(i int) string { return Extender + "-" + strconv.Itoa(i) }

// Replicas returns the names of the extender replicas (none without HA).
func (c *Cluster) Replicas() []string {
	if !c.opts.HA.enabled() {
		return nil
	}
	out := make([]string, c.opts.HA.Replicas)
	for i := range out {
		out[i] = ReplicaName(i)
	}
	return out
}

// Front returns the stand-in for the extender's Service (nil without HA).
func (c *Cluster) Front() *Front { return c.front }

// ReplicaURL returns https://127.0.0.1:PORT/ of a replica itself, not
// through the front.
func (c *Cluster) ReplicaURL(name string) string { return "https://" + c.replicaAddrs[name] + "/" }

// startReplicas starts every replica and the front, points ExtenderURL at
// the front, and waits until a leader serves through it.
func (c *Cluster) startReplicas(ctx context.Context) error {
	h := c.HA()
	if err := c.ensureExtenderTLS(); err != nil {
		return err
	}
	c.replicaAddrs = map[string]string{}
	c.launches, c.held, c.restarts = map[string]int{}, map[string]bool{}, map[string]int{}
	var backends []frontBackend
	for _, name := range c.Replicas() {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.replicaAddrs[name] = "127.0.0.1:" + strconv.Itoa(port)
		backends = append(backends, frontBackend{name: name, addr: c.replicaAddrs[name]})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("front: %w", err)
	}
	// The probes present no client certificate, like kubelet's.
	probeClient := c.ExtenderTLS.HTTPClient(nil)
	probe := func(ctx context.Context, addr string) bool {
		return httpOK(ctx, probeClient, "https://"+addr+"/readyz")
	}
	c.front = newFront(ln, backends, h.ProbePeriod, probe, c.logf)
	c.extenderAddr = c.front.Addr()
	c.ExtenderURL = "https://" + c.extenderAddr + "/"
	for _, name := range c.Replicas() {
		if err := c.LaunchReplica(name); err != nil {
			return err
		}
	}
	_, err = c.WaitLeader(ctx)
	return err
}

// LaunchReplica starts a replica (again, after KillReplica) on its own
// address and returns at once. Its Lease identity is
// <name>_<launch number> (ReplicaIdentity). A replica that exits by itself
// (a leader that could not renew its Lease in time exits, to restart as a
// follower) is started again half a second later, as kubelet restarts the
// container; one that KillReplica killed stays down until LaunchReplica.
func (c *Cluster) LaunchReplica(name string) error {
	addr, ok := c.replicaAddrs[name]
	if !ok {
		return fmt.Errorf("no extender replica %q", name)
	}
	c.mu.Lock()
	if p := c.procs[name]; p != nil && p.running() {
		c.mu.Unlock()
		return fmt.Errorf("%s is already running", name)
	}
	c.launches[name]++
	c.held[name] = false
	id := ReplicaIdentity(name, c.launches[name])
	c.mu.Unlock()
	h := c.HA()
	args := append(c.extenderArgs(addr),
		"--leader-elect-identity="+id,
		"--leader-elect=true",
		"--leader-elect-namespace="+SystemNamespace,
		"--leader-elect-lease-name="+LeaseName,
		"--leader-elect-lease-duration="+h.LeaseDuration.String(),
		"--leader-elect-renew-deadline="+h.RenewDeadline.String(),
		"--leader-elect-retry-period="+h.RetryPeriod.String(),
	)
	env, err := c.extenderEnv()
	if err != nil {
		return err
	}
	p, err := c.run(name, filepath.Join(c.gpusliceBin, Extender), args, env...)
	if err != nil {
		return err
	}
	go c.superviseReplica(name, p)
	return nil
}

// ReplicaIdentity is the Lease identity of a replica's nth launch.
func ReplicaIdentity(name string, launch int) string { return name + "_" + strconv.Itoa(launch) }

// ReplicaOf returns the replica a Lease identity names ("" if none).
func (c *Cluster) ReplicaOf(identity string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, n := range c.launches {
		if identity == ReplicaIdentity(name, n) {
			return name
		}
	}
	return ""
}

// ReplicaRestarts returns how often each replica exited by itself and was
// started again.
func (c *Cluster) ReplicaRestarts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.restarts))
	for k, v := range c.restarts {
		out[k] = v
	}
	return out
}

// superviseReplica starts the replica again when it exits by itself.
func (c *Cluster) superviseReplica(name string, p *process) {
	select {
	case <-p.exited:
	case <-c.stopCh:
		return
	}
	c.mu.Lock()
	again := !c.stopped && !c.held[name] && c.procs[name] == p
	if again {
		c.restarts[name]++
	}
	c.mu.Unlock()
	if !again {
		return
	}
	c.logf("harness: %s exited by itself (%v); starting it again, as kubelet would", name, p.err)
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.stopCh:
		return
	}
	if err := c.LaunchReplica(name); err != nil {
		c.logf("harness: restart %s: %v", name, err)
	}
}

// KillReplica SIGKILLs a replica and waits until it is gone; it stays
// down until LaunchReplica.
func (c *Cluster) KillReplica(name string) error {
	c.mu.Lock()
	p := c.procs[name]
	if p == nil || !p.running() {
		c.mu.Unlock()
		return fmt.Errorf("%s is not running", name)
	}
	c.held[name] = true
	c.mu.Unlock()
	p.stop(0)
	c.logf("harness: %s killed (SIGKILL)", name)
	return nil
}

// ReplicaReady reports whether a replica's own /readyz answers 200 now.
func (c *Cluster) ReplicaReady(ctx context.Context, name string) bool {
	code, _, err := c.ReplicaReadyz(ctx, name)
	return err == nil && code == http.StatusOK
}

// ReplicaReadyz returns the status code and body of a replica's own
// /readyz (asked without a client certificate, as kubelet's probe does).
func (c *Cluster) ReplicaReadyz(ctx context.Context, name string) (int, string, error) {
	client := c.ExtenderTLS.HTTPClient(nil)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ReplicaURL(name)+"readyz", nil)
	if err != nil {
		return 0, "", fmt.Errorf("readyz of %s: %w", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("readyz of %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, "", fmt.Errorf("readyz of %s: %w", name, err)
	}
	return resp.StatusCode, string(b), nil
}

// WaitLeader waits until exactly one running replica's /readyz answers 200
// (it leads and its caches are loaded) and a request through the front
// reaches it; it returns that replica.
func (c *Cluster) WaitLeader(ctx context.Context) (string, error) {
	cert, err := c.ExtenderTLS.SchedulerCert()
	if err != nil {
		return "", err
	}
	viaFront := c.ExtenderTLS.HTTPClient(cert)
	defer viaFront.CloseIdleConnections()
	begin := time.Now()
	var leader string
	last := errors.New("no replica ready")
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		var ready []string
		for _, name := range c.Replicas() {
			if c.Running(name) && c.ReplicaReady(ctx, name) {
				ready = append(ready, name)
			}
		}
		if len(ready) != 1 {
			last = fmt.Errorf("ready replicas: %v", ready)
			return false, nil
		}
		if !httpOK(ctx, viaFront, c.ExtenderURL+"readyz") {
			last = fmt.Errorf("%s is ready, but not yet reachable through the front", ready[0])
			return false, nil
		}
		leader = ready[0]
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("no extender leader after %v: %w (%w)", time.Since(begin).Round(time.Millisecond), err, last)
	}
	c.logf("harness: %s leads and serves through the front after %v", leader, time.Since(begin).Round(time.Millisecond))
	return leader, nil
}
