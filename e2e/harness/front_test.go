package harness

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/wait"
)

// nameServer accepts connections and writes its name on each.
func nameServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestFrontRoutesToReadyReplicas: new connections go round-robin to the
// replicas whose last probe passed, and are closed at once when none did.
func TestFrontRoutesToReadyReplicas(t *testing.T) {
	a, b := nameServer(t, "a"), nameServer(t, "b")
	var mu sync.Mutex
	ready := map[string]bool{}
	set := func(m map[string]bool) {
		mu.Lock()
		defer mu.Unlock()
		ready = m
	}
	probe := func(_ context.Context, addr string) bool {
		mu.Lock()
		defer mu.Unlock()
		return ready[addr]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := newFront(ln, []frontBackend{{"a", a}, {"b", b}}, 10*time.Millisecond, probe, t.Logf)
	defer f.Close()

	dial := func() string {
		c, err := net.DialTimeout("tcp", f.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read through the front: %v", err)
		}
		return string(got)
	}
	waitReady := func(want []string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			return cmp.Equal(f.Ready(), want), nil
		}); err != nil {
			t.Fatalf("front ready = %v, want %v", f.Ready(), want)
		}
	}

	waitReady(nil)
	if got := dial(); got != "" {
		t.Fatalf("no replica ready: got %q through the front, want the connection closed", got)
	}
	set(map[string]bool{b: true})
	waitReady([]string{"b"})
	for range 3 {
		if got := dial(); got != "b" {
			t.Fatalf("only b ready: got %q", got)
		}
	}
	set(map[string]bool{a: true, b: true})
	waitReady([]string{"a", "b"})
	seen := map[string]int{}
	for range 4 {
		seen[dial()]++
	}
	if diff := cmp.Diff(map[string]int{"a": 2, "b": 2}, seen); diff != "" {
		t.Errorf("round-robin over two ready replicas (-want +got):\n%s", diff)
	}
	set(map[string]bool{a: true})
	waitReady([]string{"a"})
	if got := dial(); got != "a" {
		t.Fatalf("only a ready: got %q", got)
	}
	routed, refused := f.Stats()
	if diff := cmp.Diff(map[string]int{"a": 3, "b": 5}, routed); diff != "" || refused != 1 {
		t.Errorf("stats: refused %d (want 1), routed (-want +got):\n%s", refused, diff)
	}
	var changes []string
	for _, ev := range f.History() {
		changes = append(changes, ev.Replica+map[bool]string{true: "+", false: "-"}[ev.Ready])
	}
	if diff := cmp.Diff([]string{"b+", "a+", "b-"}, changes); diff != "" {
		t.Errorf("readiness history (-want +got):\n%s", diff)
	}
}
