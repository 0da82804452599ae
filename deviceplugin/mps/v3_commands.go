package mps

// The MPS v3 run-time commands, as NVIDIA's "MPS v3 Interface" page
// documents them (module verb syntax, the namespace name positional, the
// server as --server=S):
//
//	namespace create N --server=S
//	namespace set N --server=S --pinned-memory-limit=<n>M --active-thread-percentage=P [--client-priority=C]
//	namespace delete N --server=S
//	namespace list --server=S --format=csv,noheader
//
// `namespace create` takes no limits: they are set with `namespace set`.
// `namespace list` prints the columns name, server, server-status,
// pinned-memory-limit, active-thread-percentage, client-priority and
// pipe-directory.

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gpuslice/gpuslice/api"
)

// nsCommand is `namespace <verb> <name> --server=gpuslice <extra...>`; an
// empty name is left out (list).
func nsCommand(verb, name string, extra ...string) []string {
	args := []string{"namespace", verb}
	if name != "" {
		args = append(args, name)
	}
	args = append(args, "--server="+v3ServerName)
	return append(args, extra...)
}

// run runs one v3 command bounded by the probe timeout.
func (m *Manager) run(ctx context.Context, d *daemon, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	defer cancel()
	return m.ctl.Run(ctx, d.spec, args...)
}

// limitFlags are the `namespace set` flags that give ns its limits.
func (m *Manager) limitFlags(ns namespace) []string {
	return []string{
		"--pinned-memory-limit=" + strconv.FormatInt(ns.memMiB, 10) + "M",
		"--active-thread-percentage=" + strconv.Itoa(ns.threads),
		"--client-priority=" + strconv.Itoa(m.cfg.ClientPriority),
	}
}

// createNamespace creates ns on d's server and sets its limits; a
// namespace whose limits could not be set is deleted again.
func (m *Manager) createNamespace(ctx context.Context, d *daemon, ns namespace) error {
	if _, err := m.run(ctx, d, nsCommand("create", ns.name)...); err != nil {
		return fmt.Errorf("create MPS v3 namespace %s: %w", ns.name, err)
	}
	if err := m.setNamespace(ctx, d, ns); err != nil {
		if _, derr := m.deleteNamespace(ctx, d, ns.name); derr != nil {
			return fmt.Errorf("%w (and deleting it again: %w)", err, derr)
		}
		return err
	}
	return nil
}

// setNamespace sets the limits of the existing namespace ns.
func (m *Manager) setNamespace(ctx context.Context, d *daemon, ns namespace) error {
	if _, err := m.run(ctx, d, nsCommand("set", ns.name, m.limitFlags(ns)...)...); err != nil {
		return fmt.Errorf("set the limits of MPS v3 namespace %s: %w", ns.name, err)
	}
	return nil
}

// deleteNamespace deletes namespace name from d's server.
func (m *Manager) deleteNamespace(ctx context.Context, d *daemon, name string) (string, error) {
	return m.run(ctx, d, nsCommand("delete", name)...)
}

// nsRow is one namespace as `namespace list` reports it. memMiB and
// threads are 0 when the daemon reports no limit.
type nsRow struct {
	name    string
	memMiB  int64
	threads int
}

// listNamespaces returns the namespaces of d's server.
func (m *Manager) listNamespaces(ctx context.Context, d *daemon) ([]nsRow, error) {
	out, err := m.run(ctx, d, nsCommand("list", "", "--format=csv,noheader")...)
	if err != nil {
		return nil, fmt.Errorf("list MPS v3 namespaces: %w", err)
	}
	rows, err := parseNamespaceList(out)
	if err != nil {
		return nil, fmt.Errorf("list MPS v3 namespaces: %w", err)
	}
	return rows, nil
}

// namespaceListColumns is how many columns a `namespace list` row has.
const namespaceListColumns = 7

// parseNamespaceList reads `namespace list --format=csv,noheader` output:
// one row of namespaceListColumns comma-separated fields per namespace.
// Rows of other servers are skipped. The pinned memory limit must be one
// parseMiB accepts and the thread percentage 0..100; "-" or "" for either
// means no limit.
func parseNamespaceList(out string) ([]nsRow, error) {
	var rows []nsRow
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != namespaceListColumns {
			return nil, fmt.Errorf("row %q: %d columns, want %d", line, len(f), namespaceListColumns)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if f[1] != v3ServerName {
			continue
		}
		r := nsRow{name: f[0]}
		var err error
		if r.memMiB, err = parseLimitMiB(f[3]); err == nil {
			r.threads, err = parsePercentage(f[4])
		}
		if err != nil {
			return nil, fmt.Errorf("row %q: %w", line, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// parseLimitMiB is parseMiB, with "-" or "" (no limit) as 0.
func parseLimitMiB(v string) (int64, error) {
	if v == "" || v == "-" {
		return 0, nil
	}
	return parseMiB(v)
}

// parsePercentage parses an active thread percentage ("30", "30.00"),
// rounded; "-" or "" (no limit) is 0.
func parsePercentage(v string) (int, error) {
	if v == "" || v == "-" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= maxThreadPercentage) {
		return 0, fmt.Errorf("thread percentage %q is not 0..100", v)
	}
	return int(f + 0.5), nil
}

// parseMiB parses a limit such as "4096M", "4G" or "1048576K" into MiB
// (NVIDIA's unit suffixes; K rounds down to whole MiB).
func parseMiB(v string) (int64, error) {
	var num string
	mult, div := int64(1), int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		num, mult = strings.TrimSuffix(v, "G"), 1024
	case strings.HasSuffix(v, "M"):
		num = strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "K"):
		num, div = strings.TrimSuffix(v, "K"), 1024
	default:
		return 0, fmt.Errorf("limit %q: want <n>K, <n>M or <n>G", v)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n/div > api.MaxMemoryMiBPerGPU/mult {
		return 0, fmt.Errorf("limit %q: want <n>K, <n>M or <n>G, at most %d MiB", v, api.MaxMemoryMiBPerGPU)
	}
	return n / div * mult, nil
}
