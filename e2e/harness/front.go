package harness

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Front stands in for the extender's Service in front of several replicas
// (Options.HA): a TCP proxy on the address kube-scheduler calls, that sends
// every new connection to one of the replicas that passed its last
// readiness probe, round-robin, as kube-proxy does with the endpoints of
// ready pods (the chart's readinessProbe: GET /readyz, failureThreshold 1).
// Like kube-proxy it works on connections, not requests: TLS goes through
// to the replica untouched (mutual TLS stays end to end), a connection
// keeps its replica when that replica turns not ready, and it breaks when
// the replica dies. With no ready replica a new connection is closed at
// once (kube-proxy rejects it).
type Front struct {
	ln       net.Listener
	backends []frontBackend
	probe    func(ctx context.Context, addr string) bool
	period   time.Duration
	logf     func(string, ...any)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards everything below
	ready   map[string]bool
	next    int
	conns   map[net.Conn]struct{}
	history []FrontEvent
	routed  map[string]int
	refused int
}

// frontBackend is one replica behind the front.
type frontBackend struct{ name, addr string }

// FrontEvent is a change of a replica's readiness as the front saw it.
type FrontEvent struct {
	Time    time.Time
	Replica string
	Ready   bool
}

// newFront serves on ln and probes every backend each period with probe.
func newFront(ln net.Listener, backends []frontBackend, period time.Duration, probe func(ctx context.Context, addr string) bool, logf func(string, ...any)) *Front {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{
		ln: ln, backends: backends, probe: probe, period: period, logf: logf,
		ctx: ctx, cancel: cancel,
		ready: map[string]bool{}, conns: map[net.Conn]struct{}{}, routed: map[string]int{},
	}
	f.probeAll()
	f.wg.Add(2)
	go f.probeLoop()
	go f.acceptLoop()
	return f
}

// Addr is the front's host:port.
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Ready returns the replicas that passed their last probe.
func (f *Front) Ready() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.backends {
		if f.ready[b.name] {
			out = append(out, b.name)
		}
	}
	return out
}

// History returns every readiness change the front saw, oldest first.
func (f *Front) History() []FrontEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history)
}

// Stats returns how many connections went to each replica and how many
// were refused for want of a ready one.
func (f *Front) Stats() (routed map[string]int, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.routed))
	for k, v := range f.routed {
		out[k] = v
	}
	return out, f.refused
}

// Close stops accepting and probing, closes every proxied connection and
// waits for the front's goroutines.
func (f *Front) Close() {
	f.cancel()
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Front) probeLoop() {
	defer f.wg.Done()
	t := time.NewTicker(f.period)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			f.probeAll()
		}
	}
}

// probeAll probes every backend at once and records the results.
func (f *Front) probeAll() {
	res := make([]bool, len(f.backends))
	var wg sync.WaitGroup
	for i, b := range f.backends {
		wg.Go(func() { res[i] = f.probe(f.ctx, b.addr) })
	}
	wg.Wait()
	if f.ctx.Err() != nil {
		return
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.backends {
		if f.ready[b.name] != res[i] {
			f.ready[b.name] = res[i]
			f.history = append(f.history, FrontEvent{Time: now, Replica: b.name, Ready: res[i]})
			f.logf("harness: front: %s ready=%v", b.name, res[i])
		}
	}
}

// pick returns the next ready backend, round-robin; ok is false when none
// is ready.
func (f *Front) pick() (frontBackend, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range f.backends {
		b := f.backends[f.next%len(f.backends)]
		f.next++
		if f.ready[b.name] {
			f.routed[b.name]++
			return b, true
		}
	}
	f.refused++
	return frontBackend{}, false
}

// track adds (or, with add false, removes) a connection to close on Close;
// it refuses new ones once the front is closing.
func (f *Front) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !add {
		delete(f.conns, c)
		return true
	}
	if f.ctx.Err() != nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Front) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.ctx.Err() != nil {
				return
			}
			f.logf("harness: front: accept: %v", err)
			continue
		}
		if !f.track(c, true) {
			_ = c.Close()
			return
		}
		f.wg.Go(func() {
			defer f.track(c, false)
			f.proxy(c)
		})
	}
}

// proxy connects c to a ready backend and copies both ways until either
// side closes.
func (f *Front) proxy(c net.Conn) {
	defer c.Close()
	b, ok := f.pick()
	if !ok {
		return
	}
	d := net.Dialer{Timeout: time.Second}
	up, err := d.DialContext(f.ctx, "tcp", b.addr)
	if err != nil {
		// The replica died since its last probe: the caller sees its
		// connection reset, as through kube-proxy.
		return
	}
	if !f.track(up, true) {
		_ = up.Close()
		return
	}
	defer f.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	// One side is done: close both, which ends the other copy.
	_ = c.Close()
	_ = up.Close()
	<-done
}
