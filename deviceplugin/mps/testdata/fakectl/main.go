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

	if len(os.Args) > 1 {
		flags := ""
		for _, a := range os.Args[1:] {
			switch a {
			case "-d":
			case "-multiuser-server":
				flags += " multiuser"
			default:
				fmt.Fprintln(os.Stderr, "fakectl: unknown flag", a)
				return 2
			}
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
