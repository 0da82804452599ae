package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"sigs.k8s.io/yaml"
)

// SchedulerSetup is how a kube-scheduler that StartScheduler starts departs
// from manifests/scheduler-config.yaml. The zero value is the shipped
// configuration (with the harness's addresses).
type SchedulerSetup struct {
	// WithoutExtender drops the extenders stanza: kube-scheduler alone,
	// counting gpuslice.io/* as plain extended resources.
	WithoutExtender bool
	// DefaultPercentageOfNodesToScore drops percentageOfNodesToScore, so
	// kube-scheduler uses its adaptive default (50% minus 1% per 125 nodes,
	// at least 5%, at least 100 nodes).
	DefaultPercentageOfNodesToScore bool
	// WithoutLeaderElection sets leaderElection.leaderElect to false, so a
	// scheduler started after another one stopped need not wait for its
	// lease to expire.
	WithoutLeaderElection bool
}

// startScheduler starts kube-scheduler with the shipped configuration.
func (c *Cluster) startScheduler(ctx context.Context) error {
	return c.StartScheduler(ctx, SchedulerSetup{})
}

// StartScheduler starts kube-scheduler with the shipped configuration
// changed as s says, and waits until its /readyz answers. It fails when a
// kube-scheduler is already running (StopScheduler stops it).
func (c *Cluster) StartScheduler(ctx context.Context, s SchedulerSetup) error {
	if p := c.proc(KubeScheduler); p != nil && p.running() {
		return errors.New("kube-scheduler is already running")
	}
	if err := c.writeSchedulerConfigWith(c.path("scheduler-config.yaml"), s); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := c.run(KubeScheduler, filepath.Join(c.k8sBin, KubeScheduler), []string{
		"--config=" + c.path("scheduler-config.yaml"),
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--v=2",
	})
	if err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed, loopback only
	defer insecure.CloseIdleConnections()
	return c.waitReady(ctx, p, func(ctx context.Context) bool {
		return httpOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(port)+"/readyz")
	})
}

// StopScheduler stops kube-scheduler (SIGTERM, SIGKILL after the stop
// grace) and waits until it has exited.
func (c *Cluster) StopScheduler() error { return c.stopComponent(KubeScheduler) }

// StopExtender stops the extender as StopScheduler stops kube-scheduler
// (KillExtender SIGKILLs it at once).
func (c *Cluster) StopExtender() error { return c.stopComponent(Extender) }

func (c *Cluster) stopComponent(name string) error {
	p := c.proc(name)
	if p == nil || !p.running() {
		return fmt.Errorf("%s is not running", name)
	}
	p.stop(c.opts.StopGrace)
	return nil
}

// The addresses manifests/scheduler-config.yaml ships with; the harness
// replaces exactly these, and switches that extender to mutual TLS.
const (
	shippedExtenderURL = "http://127.0.0.1:8888/"
	shippedKubeconfig  = "/etc/kubernetes/scheduler.conf"
)

// writeSchedulerConfig templates manifests/scheduler-config.yaml: the
// kubeconfig path, and for the extender at the shipped URL its URL, HTTPS
// and a tlsConfig with kube-scheduler's client certificate and the CA.
func (c *Cluster) writeSchedulerConfig(out string) error {
	return c.writeSchedulerConfigWith(out, SchedulerSetup{})
}

// writeSchedulerConfigWith is writeSchedulerConfig changed as s says.
func (c *Cluster) writeSchedulerConfigWith(out string, s SchedulerSetup) error {
	src := filepath.Join(c.repoRoot, "manifests", "scheduler-config.yaml")
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("scheduler config: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	cc, _ := cfg["clientConnection"].(map[string]any)
	if cc == nil || cc["kubeconfig"] != shippedKubeconfig {
		return fmt.Errorf("%s: want clientConnection.kubeconfig %q to replace", src, shippedKubeconfig)
	}
	cc["kubeconfig"] = c.path("scheduler.kubeconfig")
	if err := c.templateExtender(cfg, src); err != nil {
		return err
	}
	if s.WithoutExtender {
		delete(cfg, "extenders")
	}
	if s.DefaultPercentageOfNodesToScore {
		delete(cfg, "percentageOfNodesToScore")
	}
	if s.WithoutLeaderElection {
		cfg["leaderElection"] = map[string]any{"leaderElect": false}
	}
	b, err = yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("scheduler config: %w", err)
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return fmt.Errorf("write scheduler config: %w", err)
	}
	return nil
}

// templateExtender points the extender at the shipped URL at the cluster's
// extender, over mutual TLS.
func (c *Cluster) templateExtender(cfg map[string]any, src string) error {
	exts, _ := cfg["extenders"].([]any)
	found := 0
	for _, e := range exts {
		ext, _ := e.(map[string]any)
		if ext == nil || ext["urlPrefix"] != shippedExtenderURL {
			continue
		}
		found++
		ext["urlPrefix"] = c.ExtenderURL
		if c.ExtenderTLS != nil {
			ext["enableHTTPS"] = true
			ext["tlsConfig"] = map[string]any{
				"certFile": c.ExtenderTLS.ClientCert,
				"keyFile":  c.ExtenderTLS.ClientKey,
				"caFile":   c.ExtenderTLS.CAFile,
			}
		}
	}
	if found != 1 {
		return fmt.Errorf("%s: want exactly one extender at %q to replace, found %d", src, shippedExtenderURL, found)
	}
	return nil
}
