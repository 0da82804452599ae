package mps

// MPS v3 (Config.Version 3). What follows NVIDIA's MPS guide (r615/r620,
// "MPS v3 Interface", "MPS v3 Namespaces", "MPS v3 Configuration File"):
//   - the daemon starts with `nvidia-cuda-mps-control -d -p 3 -a FILE`
//     (-m for multi-user) and applies the TOML FILE once at start; later
//     changes are not written back, so the plugin rewrites FILE with every
//     namespace it knows before each (re)start;
//   - the TOML's schema_version "1.0", [servers.<name>] with
//     allowed_devices, pinned_memory_limit and active_thread_percentage,
//     and [servers.<name>.namespaces.<name>] with pinned_memory_limit and
//     active_thread_percentage, values as strings ("4096M", "30");
//   - a client reaches namespace N of server S through the socket
//     $CUDA_MPS_PIPE_DIRECTORY/S/N/control;
//   - `nvidia-cuda-mps-control -q` quits the daemon.
//
// What the guide's pages available here did not spell out, and is an
// assumption (named so, and kept in this file):
//   - the spelling of the runtime namespace commands, modelled on the
//     documented module verb syntax (`server create --uid=UID`):
//     `namespace create --server=S --name=N --pinned-memory-limit=<MiB>M
//     --active-thread-percentage=P`, `namespace delete --server=S --name=N`,
//     `namespace list --server=S` (one name per line, failing when S does
//     not exist) and `namespace get --server=S --name=N` ("key = value"
//     lines with the TOML keys);
//   - that a client whose CUDA_MPS_PIPE_DIRECTORY is a namespace's
//     directory S/N connects to its control socket, so mounting only that
//     directory routes the container to its namespace;
//   - that a namespace's pinned_memory_limit applies to each device of the
//     server (one value per namespace: a container whose shares differ
//     between GPUs is refused).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin/device"
)

const (
	// v3ServerName is the one MPS v3 server each daemon runs.
	v3ServerName = "gpuslice"
	// v3ConfigFileName is the TOML file, in <Root>/<id>, that the daemon
	// applies at start.
	v3ConfigFileName = "mps.toml"
	// namespacePrefix marks the namespaces gpuslice manages; others (the
	// server's "default") are left alone.
	namespacePrefix = "gs_"
	// maxNamespaceName bounds a namespace name (a path element).
	maxNamespaceName = 200
)

// namespace is one container's MPS v3 namespace.
type namespace struct {
	name   string
	podUID string
	// memMiB is the pinned memory limit per device, threads the active
	// thread percentage; 0 when adopted without readable limits.
	memMiB  int64
	threads int
	// since is when the namespace was created or adopted (ReleaseGrace).
	since time.Time
}

// NamespaceName is the name of container c's namespace:
// "gs_<pod UID>_<container>". Kubernetes UIDs and container names hold only
// letters, digits and '-', so the name is a valid path element and the pod
// is read back from it after a plugin restart.
func NamespaceName(c device.ContainerRef) (string, error) {
	if !namePart(c.PodUID) || !namePart(c.Container) {
		return "", fmt.Errorf("MPS v3 namespace of pod %q container %q: only letters, digits and '-' can name a namespace", c.PodUID, c.Container)
	}
	name := namespacePrefix + c.PodUID + "_" + c.Container
	if len(name) > maxNamespaceName {
		return "", fmt.Errorf("MPS v3 namespace %q: longer than %d bytes", name, maxNamespaceName)
	}
	return name, nil
}

// namePart reports whether s may be a part of a namespace name: letters,
// digits and '-' only, so a name is a plain path element and a bare TOML
// key.
func namePart(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-'
	})
}

// namespacePod returns the pod UID of a gpuslice namespace name, and false
// for any name NamespaceName cannot produce (another program's namespace,
// or a name a daemon reported that could not be a path element or a TOML
// key: it is never adopted, written or released).
func namespacePod(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, namespacePrefix)
	if !ok || len(name) > maxNamespaceName {
		return "", false
	}
	uid, ctr, ok := strings.Cut(rest, "_")
	return uid, ok && namePart(uid) && namePart(ctr)
}

// NamespaceDir is the host directory of namespace name on the daemon whose
// pipe directory is pipeDir: the directory holding its control socket.
func NamespaceDir(pipeDir, name string) string {
	return filepath.Join(pipeDir, v3ServerName, name)
}

func nsArgs(verb, name string, extra ...string) []string {
	args := []string{"namespace", verb, "--server=" + v3ServerName}
	if name != "" {
		args = append(args, "--name="+name)
	}
	return append(args, extra...)
}

// run runs one v3 command bounded by the probe timeout.
func (m *Manager) run(ctx context.Context, d *daemon, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	return m.ctl.Run(ctx, d.spec, args...)
}

// createNamespace creates ns on d's server.
func (m *Manager) createNamespace(ctx context.Context, d *daemon, ns namespace) error {
	_, err := m.run(ctx, d, nsArgs("create", ns.name,
		"--pinned-memory-limit="+strconv.FormatInt(ns.memMiB, 10)+"M",
		"--active-thread-percentage="+strconv.Itoa(ns.threads))...)
	if err != nil {
		return fmt.Errorf("create MPS v3 namespace %s: %w", ns.name, err)
	}
	return nil
}

// listNamespaces returns the names of the namespaces of d's server.
func (m *Manager) listNamespaces(ctx context.Context, d *daemon) ([]string, error) {
	out, err := m.run(ctx, d, nsArgs("list", "")...)
	if err != nil {
		return nil, fmt.Errorf("list MPS v3 namespaces: %w", err)
	}
	return strings.Fields(out), nil
}

// readNamespace reads the limits of namespace name from d's server.
func (m *Manager) readNamespace(ctx context.Context, d *daemon, name string) (memMiB int64, threads int, err error) {
	out, err := m.run(ctx, d, nsArgs("get", name)...)
	if err != nil {
		return 0, 0, fmt.Errorf("read MPS v3 namespace %s: %w", name, err)
	}
	memMiB, threads, err = parseNamespaceGet(out)
	if err != nil {
		return 0, 0, fmt.Errorf("read MPS v3 namespace %s: %w", name, err)
	}
	return memMiB, threads, nil
}

// parseNamespaceGet reads the limits from `namespace get` output ("key =
// value" lines with the TOML keys; other lines are ignored). The threads
// must be a percentage 0..100 and the memory a limit parseMiB accepts.
func parseNamespaceGet(out string) (memMiB int64, threads int, err error) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "pinned_memory_limit":
			memMiB, err = parseMiB(v)
		case "active_thread_percentage":
			var f float64
			f, err = strconv.ParseFloat(v, 64)
			if err == nil && !(f >= 0 && f <= 100) {
				err = fmt.Errorf("thread percentage %q is not 0..100", v)
			}
			threads = int(f + 0.5)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("%q: %w", line, err)
		}
	}
	return memMiB, threads, nil
}

// parseMiB parses a limit such as "4096M" or "4G" into MiB.
func parseMiB(v string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1024, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		v = strings.TrimSuffix(v, "M")
	default:
		return 0, fmt.Errorf("limit %q: want <n>M or <n>G", v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > api.MaxMemoryMiBPerGPU/mult {
		return 0, fmt.Errorf("limit %q: want <n>M or <n>G, at most %d MiB", v, api.MaxMemoryMiBPerGPU)
	}
	return n * mult, nil
}

// configTOML is the TOML that d's daemon applies at start: its server
// (its GPUs, the per-client ceilings) and every namespace in nss.
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
	for _, ns := range nss {
		if ns.memMiB <= 0 || ns.threads <= 0 {
			continue // adopted without readable limits: not recreated
		}
		fmt.Fprintf(&b, "\n[servers.%s.namespaces.%s]\n", v3ServerName, ns.name)
		fmt.Fprintf(&b, "pinned_memory_limit = \"%dM\"\n", ns.memMiB)
		fmt.Fprintf(&b, "active_thread_percentage = \"%d\"\n", ns.threads)
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
		if names, err := m.listNamespaces(ctx, d); err == nil {
			m.adopt(ctx, d, names)
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

// adopt records gpuslice's namespaces among names (a daemon that outlived
// the plugin), reading their limits; one whose limits cannot be read is
// kept without them (it is not recreated if the daemon restarts).
func (m *Manager) adopt(ctx context.Context, d *daemon, names []string) {
	logger := klog.FromContext(ctx).WithValues("daemon", d.spec.ID)
	now := m.cfg.Clock.Now()
	for _, name := range names {
		uid, ok := namespacePod(name)
		if !ok {
			continue
		}
		ns := &namespace{name: name, podUID: uid, since: now}
		mem, threads, err := m.readNamespace(ctx, d, name)
		if err != nil {
			logger.Error(err, "Adopted an MPS v3 namespace without its limits", "namespace", name)
		} else {
			ns.memMiB, ns.threads = mem, threads
		}
		m.mu.Lock()
		if _, known := d.namespaces[name]; !known {
			d.namespaces[name] = ns
		}
		m.mu.Unlock()
		logger.V(2).Info("Adopted MPS v3 namespace", "namespace", name, "memMiB", ns.memMiB, "threads", ns.threads)
	}
}

// probeV3 checks that d's server answers and still has every namespace the
// Manager knows; a missing one (the daemon lost it) is created again. An
// error means the daemon must be restarted.
func (m *Manager) probeV3(ctx context.Context, d *daemon) error {
	names, err := m.listNamespaces(ctx, d)
	if err != nil {
		return fmt.Errorf("MPS v3 control daemon does not answer: %w", err)
	}
	for _, ns := range m.knownNamespaces(d) {
		if slices.Contains(names, ns.name) || ns.memMiB <= 0 || ns.threads <= 0 {
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
	ns := namespace{name: name, podUID: c.PodUID, memMiB: r.mem[0], threads: r.threads, since: m.cfg.Clock.Now()}
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
	default:
		if exists {
			if _, err := m.run(ctx, r.d, nsArgs("delete", name)...); err != nil {
				return nil, fmt.Errorf("MPS container edits: replace namespace %s: %w", name, err)
			}
		}
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
			if !live[ns.podUID] && now.Sub(ns.since) >= m.cfg.ReleaseGrace {
				victims = append(victims, victim{d: d, name: name, healthy: d.healthy})
			}
		}
	}
	m.mu.Unlock()
	slices.SortFunc(victims, func(a, b victim) int { return strings.Compare(a.name, b.name) })

	for _, v := range victims {
		if v.healthy {
			if _, err := m.run(ctx, v.d, nsArgs("delete", v.name)...); err != nil {
				// Already gone from the server: nothing left to delete.
				names, lerr := m.listNamespaces(ctx, v.d)
				if lerr != nil || slices.Contains(names, v.name) {
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
