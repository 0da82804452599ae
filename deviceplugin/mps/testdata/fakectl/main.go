// Command fakectl is a fake nvidia-cuda-mps-control for the mps package's
// tests. It keeps its state in files of CUDA_MPS_PIPE_DIRECTORY:
//
//   - commands.log: every invocation, one line each ("start visible=... log=..."
//     for -d, the command line otherwise);
//   - fakectl.alive: present while the "daemon" runs; it holds the
//     CUDA_VISIBLE_DEVICES the daemon was started with. Removing it is how a
//     test kills the daemon;
//   - fakectl.failstart: when present, -d fails;
//   - fakectl.hang: when present, control commands never answer;
//   - fakectl.servers: the MPS servers, one "<pid> <state>" per line;
//   - state.*: the defaults set through the pipe.
//
// Like the real program, -d starts the daemon and returns, and without
// arguments it reads commands from stdin and prints the answers.
//
// MPS v3 (-p 3): `-d -p 3 [-m] -a FILE` starts a daemon that applies the
// TOML FILE (a copy is kept as fakectl.applied.toml; a key NVIDIA's "MPS v3
// Configuration File" does not allow in its table is an error): each
// [servers.S] becomes the directory S with a stand-in "control" socket
// file, each [servers.S.namespaces.N] the directory S/N with a "control"
// file and a "limits" file of `key = "value"` lines. `-q` quits. The
// module verb commands of NVIDIA's "MPS v3 Interface",
// `namespace create N --server=S`, `namespace set N --server=S
// [--pinned-memory-limit=V] [--active-thread-percentage=V]
// [--client-priority=V]`, `namespace delete N --server=S [--force]`,
// `namespace list [--server=S] [--format=csv,noheader]` (csv rows: name,
// server, server-status, pinned-memory-limit, active-thread-percentage,
// client-priority, pipe-directory) and `namespace get N S FIELD`, change
// and read that tree; they are logged like control commands.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run())
}

func run() int {
	dir := os.Getenv("CUDA_MPS_PIPE_DIRECTORY")
	if dir == "" {
		fmt.Fprintln(os.Stderr, "fakectl: CUDA_MPS_PIPE_DIRECTORY not set")
		return 2
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	exists := func(name string) bool {
		_, err := os.Stat(path(name))
		return err == nil
	}
	record := func(line string) {
		f, err := os.OpenFile(path("commands.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakectl:", err)
			return
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}

	// reach fails a command when no daemon runs, and never answers while
	// fakectl.hang exists (until the caller's timeout kills us).
	reach := func() bool {
		if !exists("fakectl.alive") {
			fmt.Fprintln(os.Stderr, "Cannot find MPS control daemon process")
			return false
		}
		if exists("fakectl.hang") {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGTERM)
			<-ch
			return false
		}
		return true
	}

	if len(os.Args) > 2 && os.Args[1] == "namespace" {
		record(strings.Join(os.Args[1:], " "))
		if !reach() {
			return 1
		}
		return namespaceCmd(dir, os.Args[2], os.Args[3:])
	}
	if len(os.Args) == 2 && os.Args[1] == "-q" {
		record("-q")
		if !exists("fakectl.alive") {
			fmt.Fprintln(os.Stderr, "Cannot find MPS control daemon process")
			return 1
		}
		_ = os.Remove(path("fakectl.alive"))
		return 0
	}
	if len(os.Args) > 1 {
		flags := ""
		protocol, config := "", ""
		for i := 1; i < len(os.Args); i++ {
			switch a := os.Args[i]; a {
			case "-d":
			case "-multiuser-server", "-m":
				flags += " multiuser"
			case "-p", "-a":
				if i+1 == len(os.Args) {
					fmt.Fprintln(os.Stderr, "fakectl: missing value of", a)
					return 2
				}
				i++
				if a == "-p" {
					protocol = os.Args[i]
				} else {
					config = os.Args[i]
				}
			default:
				fmt.Fprintln(os.Stderr, "fakectl: unknown flag", a)
				return 2
			}
		}
		if protocol != "" {
			flags += " protocol=" + protocol
		}
		if config != "" {
			flags += " config=" + config
		}
		visible := os.Getenv("CUDA_VISIBLE_DEVICES")
		record("start visible=" + visible + " log=" + os.Getenv("CUDA_MPS_LOG_DIRECTORY") + flags)
		if exists("fakectl.failstart") {
			fmt.Fprintln(os.Stderr, "fakectl: start failure requested")
			return 1
		}
		if exists("fakectl.alive") {
			fmt.Fprintln(os.Stderr, "An instance of this daemon is already running")
			return 1
		}
		// A new daemon starts with MPS's own defaults.
		_ = os.Remove(path("state.thread"))
		mems, _ := filepath.Glob(path("state.mem.*"))
		for _, m := range mems {
			_ = os.Remove(m)
		}
		if protocol == "3" {
			if err := applyConfig(dir, config); err != nil {
				fmt.Fprintln(os.Stderr, "fakectl:", err)
				return 1
			}
		}
		if err := os.WriteFile(path("fakectl.alive"), []byte(visible), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fakectl:", err)
			return 1
		}
		return 0
	}

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		record(line)
		if !reach() {
			return 1
		}
		visible, _ := os.ReadFile(path("fakectl.alive"))
		devices := len(strings.Split(string(visible), ","))
		f := strings.Fields(line)
		switch {
		case f[0] == "get_default_active_thread_percentage" && len(f) == 1:
			v, err := os.ReadFile(path("state.thread"))
			if err != nil {
				v = []byte("100")
			}
			n, _ := strconv.Atoi(string(v))
			fmt.Printf("%.1f\n", float64(n))
		case f[0] == "set_default_active_thread_percentage" && len(f) == 2:
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 || n > 100 {
				fmt.Println("Invalid percentage")
				return 1
			}
			_ = os.WriteFile(path("state.thread"), []byte(f[1]), 0o644)
		case f[0] == "set_default_device_pinned_mem_limit" && len(f) == 3:
			dev, err := strconv.Atoi(f[1])
			if err != nil || dev < 0 || dev >= devices {
				fmt.Println("Invalid device", f[1])
				return 1
			}
			v := f[2]
			if _, err := strconv.Atoi(strings.TrimRight(v, "MG")); err != nil || !strings.ContainsAny(v[len(v)-1:], "MG") {
				fmt.Println("Invalid limit", v)
				return 1
			}
			_ = os.WriteFile(path("state.mem."+f[1]), []byte(v), 0o644)
		case f[0] == "get_default_device_pinned_mem_limit" && len(f) == 2:
			v, err := os.ReadFile(path("state.mem." + f[1]))
			if err != nil {
				v = []byte("0M")
			}
			fmt.Println(string(v))
		case f[0] == "get_server_list" && len(f) == 1:
			for _, l := range servers(path("fakectl.servers")) {
				fmt.Println(l[0])
			}
		case f[0] == "get_server_status" && len(f) == 2:
			found := false
			for _, l := range servers(path("fakectl.servers")) {
				if l[0] == f[1] {
					fmt.Println(l[1])
					found = true
				}
			}
			if !found {
				fmt.Println("No such server", f[1])
				return 1
			}
		case f[0] == "quit" && len(f) == 1:
			_ = os.Remove(path("fakectl.alive"))
		default:
			fmt.Println("Unrecognized command", line)
			return 1
		}
	}
	return 0
}

// servers reads the "<pid> <state>" lines of file.
func servers(file string) [][2]string {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	return out
}

// applyConfig starts the v3 tree afresh from the TOML file config: the
// servers and namespaces it declares, and nothing else.
func applyConfig(dir, config string) error {
	if config == "" {
		return fmt.Errorf("-p 3 without -a")
	}
	raw, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "fakectl.applied.toml"), raw, 0o644); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*", "control"))
	for _, c := range old {
		_ = os.RemoveAll(filepath.Dir(c))
	}
	var cur string // the namespace directory whose keys follow, or ""
	limits := map[string][]string{}
	var order []string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			parts := strings.Split(strings.Trim(l, "[]"), ".")
			cur = ""
			switch {
			case len(parts) == 2 && parts[0] == "servers":
				if err := touchSocket(filepath.Join(dir, parts[1])); err != nil {
					return err
				}
			case len(parts) == 4 && parts[0] == "servers" && parts[2] == "namespaces":
				cur = filepath.Join(dir, parts[1], parts[3])
				order = append(order, cur)
			default:
				return fmt.Errorf("unknown table %s", l)
			}
		case strings.Contains(l, "="):
			k, v, _ := strings.Cut(l, "=")
			k = strings.TrimSpace(k)
			allowed := serverKeys
			if cur != "" {
				allowed = namespaceKeys
			}
			if !strings.Contains(allowed, " "+k+" ") && k != "schema_version" {
				return fmt.Errorf("key %q not allowed here", k)
			}
			if cur != "" {
				limits[cur] = append(limits[cur], k+" = "+strings.TrimSpace(v))
			}
		default:
			return fmt.Errorf("bad line %q", l)
		}
	}
	for _, ns := range order {
		if err := writeNamespace(ns, limits[ns]); err != nil {
			return err
		}
	}
	return nil
}

// The keys NVIDIA's "MPS v3 Configuration File" allows in a server's and in
// a namespace's table (space-delimited).
const (
	serverKeys    = " allowed_devices pinned_memory_limit active_thread_percentage client_priority uid locality_domains "
	namespaceKeys = " pinned_memory_limit active_thread_percentage client_priority "
)

// touchSocket creates dir with a stand-in control socket.
func touchSocket(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "control"), nil, 0o644)
}

// writeNamespace creates namespace directory ns with its limits lines.
func writeNamespace(ns string, lines []string) error {
	if err := touchSocket(ns); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ns, "limits"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// namespaceCmd runs `namespace <verb> [<name>] <options>` on the v3 tree of
// dir.
func namespaceCmd(dir, verb string, args []string) int {
	opts := map[string]string{}
	var pos []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		opts[k] = v
	}
	name, server := "", opts["server"]
	switch {
	case verb == "get" && len(pos) == 3:
		name, server = pos[0], pos[1]
	case verb == "list" && len(pos) == 0:
	case verb != "get" && verb != "list" && len(pos) == 1:
		name = pos[0]
	default:
		fmt.Fprintln(os.Stderr, "fakectl: bad arguments", args)
		return 2
	}
	if _, err := os.Stat(filepath.Join(dir, server, "control")); server == "" || err != nil {
		fmt.Fprintln(os.Stderr, "No such server", server)
		return 1
	}
	ns := filepath.Join(dir, server, name)
	_, err := os.Stat(filepath.Join(ns, "control"))
	present := name != "" && err == nil
	switch {
	case verb == "list":
		entries, _ := os.ReadDir(filepath.Join(dir, server))
		fmt.Printf("default,%s,Ready,-,-,0,%s\n", server, filepath.Join(dir, server, "default"))
		for _, e := range entries {
			if e.IsDir() {
				l := readLimits(filepath.Join(dir, server, e.Name()))
				fmt.Printf("%s,%s,Ready,%s,%s,%s,%s\n", e.Name(), server, l["pinned_memory_limit"], l["active_thread_percentage"], l["client_priority"], filepath.Join(dir, server, e.Name()))
			}
		}
	case verb == "create":
		if !validName(name) || name == "default" || present {
			fmt.Fprintln(os.Stderr, "Invalid or existing namespace name", name)
			return 1
		}
		if err := writeNamespace(ns, nil); err != nil {
			fmt.Fprintln(os.Stderr, "fakectl:", err)
			return 1
		}
	case !present:
		fmt.Fprintln(os.Stderr, "No such namespace", name)
		return 1
	case verb == "delete":
		_ = os.RemoveAll(ns)
	case verb == "set":
		return setNamespace(ns, opts)
	case verb == "get":
		v, ok := readLimits(ns)[strings.ReplaceAll(pos[2], "-", "_")]
		if !ok {
			fmt.Fprintln(os.Stderr, "Unknown field", pos[2])
			return 1
		}
		fmt.Println(v)
	default:
		fmt.Fprintln(os.Stderr, "Unknown namespace verb", verb)
		return 2
	}
	return 0
}

// validName is NVIDIA's rule for server and namespace names: lowercase
// letters, digits and underscores, at most 64 characters.
func validName(name string) bool {
	return name != "" && len(name) <= 64 && !strings.ContainsFunc(name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_'
	})
}

// setNamespace changes the limits of namespace directory ns from the
// --pinned-memory-limit, --active-thread-percentage and --client-priority
// options; at least one is required.
func setNamespace(ns string, opts map[string]string) int {
	l := readLimits(ns)
	set := 0
	if mem, ok := opts["pinned-memory-limit"]; ok {
		if _, err := strconv.Atoi(strings.TrimRight(mem, "KMG")); err != nil || mem == "" || !strings.ContainsAny(mem[len(mem)-1:], "KMG") {
			fmt.Fprintln(os.Stderr, "Invalid limit", mem)
			return 1
		}
		l["pinned_memory_limit"], set = mem, set+1
	}
	if threads, ok := opts["active-thread-percentage"]; ok {
		if n, err := strconv.Atoi(threads); err != nil || n < 1 || n > 100 {
			fmt.Fprintln(os.Stderr, "Invalid percentage", threads)
			return 1
		}
		l["active_thread_percentage"], set = threads, set+1
	}
	if prio, ok := opts["client-priority"]; ok {
		if prio != "0" && prio != "1" {
			fmt.Fprintln(os.Stderr, "Invalid client priority", prio)
			return 1
		}
		l["client_priority"], set = prio, set+1
	}
	if set == 0 {
		fmt.Fprintln(os.Stderr, "namespace set: at least one option is required")
		return 1
	}
	var lines []string
	for _, k := range []string{"pinned_memory_limit", "active_thread_percentage", "client_priority"} {
		if v, ok := l[k]; ok {
			lines = append(lines, fmt.Sprintf("%s = %q", k, v))
		}
	}
	if err := writeNamespace(ns, lines); err != nil {
		fmt.Fprintln(os.Stderr, "fakectl:", err)
		return 1
	}
	return 0
}

// readLimits reads the `key = "value"` lines of namespace directory ns.
func readLimits(ns string) map[string]string {
	raw, _ := os.ReadFile(filepath.Join(ns, "limits"))
	out := map[string]string{}
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return out
}
