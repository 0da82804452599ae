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
// TOML FILE (a copy is kept as fakectl.applied.toml): each [servers.S]
// becomes the directory S with a stand-in "control" socket file, each
// [servers.S.namespaces.N] the directory S/N with a "control" file and a
// "limits" file of `key = "value"` lines. `-q` quits. The module verb
// commands `namespace create|delete|list|get --server=S [--name=N]
// [--pinned-memory-limit=V] [--active-thread-percentage=V]` change and
// read that tree; they are logged like control commands.
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

	if len(os.Args) > 2 && os.Args[1] == "namespace" {
		record(strings.Join(os.Args[1:], " "))
		if _, err := os.Stat(path("fakectl.alive")); err != nil {
			fmt.Fprintln(os.Stderr, "Cannot find MPS control daemon process")
			return 1
		}
		if exists("fakectl.hang") {
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGTERM)
			<-ch
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
		visible, err := os.ReadFile(path("fakectl.alive"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "Cannot find MPS control daemon process")
			return 1
		}
		if exists("fakectl.hang") {
			// Never answer: block until the caller's timeout kills us.
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, syscall.SIGTERM)
			<-ch
			return 1
		}
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
			if cur != "" {
				k, v, _ := strings.Cut(l, "=")
				limits[cur] = append(limits[cur], strings.TrimSpace(k)+" = "+strings.TrimSpace(v))
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

// namespaceCmd runs `namespace <verb> <flags>` on the v3 tree of dir.
func namespaceCmd(dir, verb string, args []string) int {
	opts := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			fmt.Fprintln(os.Stderr, "fakectl: bad option", a)
			return 2
		}
		opts[k] = v
	}
	server := opts["server"]
	if _, err := os.Stat(filepath.Join(dir, server, "control")); server == "" || err != nil {
		fmt.Fprintln(os.Stderr, "No such server", server)
		return 1
	}
	name := opts["name"]
	ns := filepath.Join(dir, server, name)
	_, err := os.Stat(filepath.Join(ns, "control"))
	present := name != "" && err == nil
	switch verb {
	case "list":
		entries, _ := os.ReadDir(filepath.Join(dir, server))
		fmt.Println("default")
		for _, e := range entries {
			if e.IsDir() {
				fmt.Println(e.Name())
			}
		}
	case "create":
		mem, threads := opts["pinned-memory-limit"], opts["active-thread-percentage"]
		switch {
		case name == "" || name == "default" || strings.ContainsAny(name, "/."):
			fmt.Fprintln(os.Stderr, "Invalid namespace name", name)
			return 1
		case present:
			fmt.Fprintln(os.Stderr, "Namespace exists", name)
			return 1
		}
		if _, err := strconv.Atoi(strings.TrimRight(mem, "MG")); err != nil || !strings.ContainsAny(mem[len(mem)-1:], "MG") {
			fmt.Fprintln(os.Stderr, "Invalid limit", mem)
			return 1
		}
		if n, err := strconv.Atoi(threads); err != nil || n < 1 || n > 100 {
			fmt.Fprintln(os.Stderr, "Invalid percentage", threads)
			return 1
		}
		if err := writeNamespace(ns, []string{
			fmt.Sprintf("pinned_memory_limit = %q", mem),
			fmt.Sprintf("active_thread_percentage = %q", threads),
		}); err != nil {
			fmt.Fprintln(os.Stderr, "fakectl:", err)
			return 1
		}
	case "delete", "get":
		if !present {
			fmt.Fprintln(os.Stderr, "No such namespace", name)
			return 1
		}
		if verb == "delete" {
			_ = os.RemoveAll(ns)
			return 0
		}
		raw, _ := os.ReadFile(filepath.Join(ns, "limits"))
		fmt.Print(string(raw))
	default:
		fmt.Fprintln(os.Stderr, "Unknown namespace verb", verb)
		return 2
	}
	return 0
}
