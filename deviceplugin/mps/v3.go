package mps

// MPS v3 (Config.Version 3), following NVIDIA's MPS guide: "MPS v3
// Interface", "MPS v3 Namespaces" and "MPS v3 Configuration File".
//   - The daemon starts with `nvidia-cuda-mps-control -d -p 3 [-m] -a FILE`
//     and applies the TOML FILE once at start; later CLI changes are not
//     written back, so the plugin rewrites FILE with every namespace it
//     knows before each (re)start.
//   - The TOML has schema_version "1.0", [servers.<name>] with
//     allowed_devices, pinned_memory_limit, active_thread_percentage and
//     client_priority, and [servers.<name>.namespaces.<name>] with only
//     pinned_memory_limit, active_thread_percentage and client_priority;
//     values are strings ("4096M", "30", "0"). The server-level limits are
//     those of the server's default namespace: a named namespace neither
//     inherits them nor is capped by them, so every namespace gpuslice
//     creates gets both limits set.
//   - A client reaches namespace N of server S through the socket
//     $CUDA_MPS_PIPE_DIRECTORY/S/N/control, and a client whose
//     CUDA_MPS_PIPE_DIRECTORY is the directory S/N connects through it, so
//     mounting only that directory routes the container to its namespace.
//   - The run-time commands are in v3_commands.go, the names in
//     v3_names.go, the kernel-enforced hard memory limit of each
//     container's cgroup in v3_limits.go.
//   - `nvidia-cuda-mps-control -q` quits the daemon.
//
// One assumption remains (docs/mps.md): a namespace's pinned_memory_limit
// applies to each device of the server, per NVIDIA's Dynamo guide ("Per-GPU
// Compute and Memory Limits with MPS"), so a container whose shares differ
// between GPUs is refused.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

// v3ConfigFileName is the TOML file, in <Root>/<id>, that the daemon
// applies at start.
const v3ConfigFileName = "mps.toml"

// namespace is one container's MPS v3 namespace.
type namespace struct {
	name string
	// pod is the pod's key (PodKey).
	pod string
	// memMiB is the pinned memory limit per device, threads the active
	// thread percentage; 0 when adopted without readable limits.
	memMiB  int64
	threads int
	// gpus are the UUIDs of the container's GPUs; nil when adopted (the
	// daemon's GPUs then stand for them).
	gpus []string
	// since is when the namespace was created or adopted (ReleaseGrace).
	since time.Time
}

// configTOML is the TOML that d's daemon applies at start: its server
// (its GPUs, and the default namespace's limits: the ceilings of a client
// that reaches the server without a namespace) and every namespace in nss.
func (m *Manager) configTOML(d *daemon, nss []namespace) string {
	var b strings.Builder
	b.WriteString("# Written by the gpuslice device plugin; applied with nvidia-cuda-mps-control -d -p 3 -a.\n")
	b.WriteString("schema_version = \"1.0\"\n\n")
	fmt.Fprintf(&b, "[servers.%s]\n", v3ServerName)
	fmt.Fprintf(&b, "allowed_devices = %q\n", strings.Join(d.spec.VisibleDevices, ","))
	ceiling := int64(0)
	for i, g := range d.gpus {
		if c := m.memCeilingMiB(g); i == 0 || c < ceiling {
			ceiling = c
		}
	}
	fmt.Fprintf(&b, "pinned_memory_limit = \"%dM\"\n", ceiling)
	fmt.Fprintf(&b, "active_thread_percentage = \"%d\"\n", m.cfg.MaxClientThreadPercentage)
	fmt.Fprintf(&b, "client_priority = \"%d\"\n", m.cfg.ClientPriority)
	for _, ns := range nss {
		if ns.memMiB <= 0 || ns.threads <= 0 {
			continue // adopted without readable limits: not recreated
		}
		fmt.Fprintf(&b, "\n[servers.%s.namespaces.%s]\n", v3ServerName, ns.name)
		fmt.Fprintf(&b, "pinned_memory_limit = \"%dM\"\n", ns.memMiB)
		fmt.Fprintf(&b, "active_thread_percentage = \"%d\"\n", ns.threads)
		fmt.Fprintf(&b, "client_priority = \"%d\"\n", m.cfg.ClientPriority)
	}
	return b.String()
}

// knownNamespaces copies d's namespaces, sorted by name.
func (m *Manager) knownNamespaces(d *daemon) []namespace {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]namespace, 0, len(d.namespaces))
	for _, ns := range d.namespaces {
		out = append(out, *ns)
	}
	slices.SortFunc(out, func(a, b namespace) int { return strings.Compare(a.name, b.name) })
	return out
}

// writeConfig writes d's TOML file (atomically).
func (m *Manager) writeConfig(d *daemon) error {
	tmp := d.spec.ConfigFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(m.configTOML(d, m.knownNamespaces(d))), 0o644); err != nil {
		return fmt.Errorf("write MPS v3 configuration: %w", err)
	}
	if err := os.Rename(tmp, d.spec.ConfigFile); err != nil {
		return fmt.Errorf("write MPS v3 configuration: %w", err)
	}
	return nil
}

// bringUpV3 makes d's v3 daemon run. With adopt, a daemon whose server
// answers is kept and gpuslice's namespaces on it are adopted (their
// limits read back); otherwise the daemon is (re)started with a TOML file
// holding the server and every namespace the Manager knows, so a restart
// brings back the namespaces of running containers.
func (m *Manager) bringUpV3(ctx context.Context, d *daemon, adopt bool) error {
	logger := klog.FromContext(ctx).WithValues("daemon", d.spec.ID)
	if err := m.prepare(d); err != nil {
		return err
	}
	if adopt {
		if rows, err := m.listNamespaces(ctx, d); err == nil {
			m.adopt(ctx, d, rows)
			logger.Info("Adopted a running MPS v3 control daemon", "namespaces", len(m.knownNamespaces(d)))
			return m.probeV3(ctx, d)
		}
	}
	if err := m.writeConfig(d); err != nil {
		return err
	}
	if err := m.restartDaemon(ctx, d); err != nil {
		return fmt.Errorf("start MPS v3 control daemon %s: %w", d.spec.ID, err)
	}
	logger.Info("Started MPS v3 control daemon", "pipeDir", d.spec.PipeDir, "gpus", d.spec.VisibleDevices, "config", d.spec.ConfigFile)
	return m.probeV3(ctx, d)
}

// adopt records gpuslice's namespaces among rows (a daemon that outlived
// the plugin) with the limits the daemon reports; one without both limits
// is kept without them (it is not recreated if the daemon restarts).
func (m *Manager) adopt(ctx context.Context, d *daemon, rows []nsRow) {
	logger := klog.FromContext(ctx).WithValues("daemon", d.spec.ID)
	now := m.cfg.Clock.Now()
	for _, r := range rows {
		pod, ok := namespacePod(r.name)
		if !ok {
			continue
		}
		ns := &namespace{name: r.name, pod: pod, since: now}
		if r.memMiB > 0 && r.threads > 0 {
			ns.memMiB, ns.threads = r.memMiB, r.threads
		} else {
			logger.Info("Adopted an MPS v3 namespace without its limits", "namespace", r.name)
		}
		m.mu.Lock()
		if _, known := d.namespaces[r.name]; !known {
			d.namespaces[r.name] = ns
		}
		m.mu.Unlock()
		logger.V(2).Info("Adopted MPS v3 namespace", "namespace", r.name, "memMiB", ns.memMiB, "threads", ns.threads)
	}
}

// probeV3 checks that d's server answers and still has every namespace the
// Manager knows; a missing one (the daemon lost it) is created again. An
// error means the daemon must be restarted.
func (m *Manager) probeV3(ctx context.Context, d *daemon) error {
	rows, err := m.listNamespaces(ctx, d)
	if err != nil {
		return fmt.Errorf("MPS v3 control daemon does not answer: %w", err)
	}
	for _, ns := range m.knownNamespaces(d) {
		if hasNamespace(rows, ns.name) || ns.memMiB <= 0 || ns.threads <= 0 {
			continue
		}
		klog.FromContext(ctx).Info("MPS v3 namespace missing on its server; creating it again", "daemon", d.spec.ID, "namespace", ns.name)
		if err := m.createNamespace(ctx, d, ns); err != nil {
			return err
		}
	}
	return nil
}

// ContainerEditsFor implements device.PodReleaser. Legacy MPS: ContainerEdits.
// MPS v3: it creates (or keeps, when it exists with the same limits) the
// namespace of container c on the server of c's GPUs, with c's gpu-mem share
// as its pinned_memory_limit and its gpu-core share (or
// Config.DefaultActiveThreadPercentage) as its active_thread_percentage, and
// returns CUDA_MPS_PIPE_DIRECTORY=Config.ContainerPipeDir with a mount of
// that namespace's socket directory alone there (and, with ShmPerDaemon,
// the daemon's shm directory as /dev/shm). The checks are ContainerEdits';
// besides, a container whose memory shares differ between its GPUs is
// refused (a namespace has one pinned memory limit).
func (m *Manager) ContainerEditsFor(c device.ContainerRef, devs []device.ContainerDevice) (*device.ContainerEdits, error) {
	if m.cfg.Version != VersionV3 {
		return m.ContainerEdits(devs)
	}
	name, err := NamespaceName(c)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r, err := m.resolve(devs)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if slices.Min(r.mem) != slices.Max(r.mem) {
		m.mu.Unlock()
		return nil, fmt.Errorf("MPS container edits: memory limits %s differ between GPUs, and an MPS v3 namespace has one pinned memory limit", strings.Join(r.limits, ","))
	}
	pod, _ := PodKey(c.PodUID)
	gpus := make([]string, len(devs))
	for i, dev := range devs {
		gpus[i] = dev.UUID
	}
	ns := namespace{name: name, pod: pod, memMiB: r.mem[0], threads: r.threads, gpus: gpus, since: m.cfg.Clock.Now()}
	old, exists := r.d.namespaces[name]
	var prev namespace
	if exists {
		prev = *old
	}
	ctx := m.ctx
	m.mu.Unlock()

	logger := klog.FromContext(ctx).WithValues("daemon", r.d.spec.ID, "namespace", name)
	switch {
	case exists && prev.memMiB == ns.memMiB && prev.threads == ns.threads:
		logger.V(2).Info("MPS v3 namespace exists with the container's limits; kept")
	case exists:
		if err := m.setNamespace(ctx, r.d, ns); err != nil {
			return nil, fmt.Errorf("MPS container edits: %w", err)
		}
		logger.Info("Changed the limits of MPS v3 namespace", "memMiB", ns.memMiB, "threads", ns.threads)
	default:
		if err := m.createNamespace(ctx, r.d, ns); err != nil {
			return nil, fmt.Errorf("MPS container edits: %w", err)
		}
		logger.Info("Created MPS v3 namespace", "memMiB", ns.memMiB, "threads", ns.threads)
	}
	m.mu.Lock()
	r.d.namespaces[name] = &ns
	m.mu.Unlock()

	edits := &device.ContainerEdits{
		Envs: map[string]string{EnvPipeDirectory: m.cfg.ContainerPipeDir},
		Mounts: []device.Mount{{ContainerPath: m.cfg.ContainerPipeDir,
			HostPath: NamespaceDir(r.d.spec.PipeDir, name), ReadOnly: m.cfg.ReadOnlyPipeMount}},
	}
	if r.d.spec.ShmDir != "" {
		edits.Mounts = append(edits.Mounts, device.Mount{ContainerPath: containerShmDir, HostPath: r.d.spec.ShmDir})
	}
	return edits, nil
}

// ReleasePods implements device.PodReleaser: in MPS v3 it deletes the
// namespaces of pods not in live, once they are older than
// Config.ReleaseGrace. A namespace on a daemon that is down, or already
// gone from its server, is only forgotten (a restart's TOML no longer holds
// it); a failed delete is retried at the next call. Legacy MPS holds nothing per pod.
func (m *Manager) ReleasePods(ctx context.Context, live map[string]bool) {
	if m.cfg.Version != VersionV3 {
		return
	}
	liveKeys := make(map[string]bool, len(live))
	for uid, ok := range live {
		if key, valid := PodKey(uid); valid && ok {
			liveKeys[key] = true
		}
	}
	logger := klog.FromContext(ctx).WithName("mps")
	type victim struct {
		d       *daemon
		name    string
		healthy bool
	}
	now := m.cfg.Clock.Now()
	var victims []victim
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	for _, d := range m.daemons {
		for name, ns := range d.namespaces {
			if !liveKeys[ns.pod] && now.Sub(ns.since) >= m.cfg.ReleaseGrace {
				victims = append(victims, victim{d: d, name: name, healthy: d.healthy})
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(victims, func(a, b victim) int { return strings.Compare(a.name, b.name) })

	for _, v := range victims {
		if v.healthy {
			if _, err := m.deleteNamespace(ctx, v.d, v.name); err != nil {
				// Already gone from the server: nothing left to delete.
				rows, lerr := m.listNamespaces(ctx, v.d)
				if lerr != nil || hasNamespace(rows, v.name) {
					logger.Error(err, "Could not delete the MPS v3 namespace of a released pod; retried later", "daemon", v.d.spec.ID, "namespace", v.name)
					continue
				}
			}
		}
		m.mu.Lock()
		delete(v.d.namespaces, v.name)
		m.mu.Unlock()
		logger.Info("Released MPS v3 namespace", "daemon", v.d.spec.ID, "namespace", v.name, "deleted", v.healthy)
	}
}

// Namespaces returns the names of the MPS v3 namespaces the Manager holds
// on uuid's server, sorted.
func (m *Manager) Namespaces(uuid string) []string {
	m.mu.Lock()
	d, ok := m.byUUID[uuid]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	var out []string
	for _, ns := range m.knownNamespaces(d) {
		out = append(out, ns.name)
	}
	return out
}

// hasNamespace reports whether rows list namespace name.
func hasNamespace(rows []nsRow, name string) bool {
	return slices.ContainsFunc(rows, func(r nsRow) bool { return r.name == name })
}
