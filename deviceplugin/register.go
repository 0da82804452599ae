package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/gpuslice/gpuslice/deviceplugin/kubeletreg"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// servers runs the three endpoints' gRPC servers and registers them with
// kubelet.
type servers struct {
	cfg    *Config
	state  *State
	broker *Broker

	mu      sync.Mutex
	running []*running
	kubelet kubeletreg.FileID
}

type running struct {
	kind   Kind
	srv    *grpc.Server
	sock   kubeletreg.FileID
	stop   chan struct{}
	served chan struct{}
}

// start serves every endpoint on a fresh socket and registers it.
func (s *servers) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	logger := klog.FromContext(ctx)
	kid, ok := kubeletreg.StatID(filepath.Join(s.cfg.PluginDir, s.cfg.KubeletSocket))
	if !ok {
		return fmt.Errorf("kubelet registration socket %s not present", filepath.Join(s.cfg.PluginDir, s.cfg.KubeletSocket))
	}
	for _, k := range Kinds() {
		r, err := s.serve(ctx, k)
		if err != nil {
			s.stopLocked()
			return err
		}
		s.running = append(s.running, r)
	}
	for _, r := range s.running {
		if err := s.register(ctx, r.kind); err != nil {
			s.stopLocked()
			return err
		}
	}
	s.kubelet = kid
	logger.Info("Registered with kubelet", "resources", []string{KindMem.Resource(), KindCore.Resource(), KindSlot.Resource()})
	return nil
}

func (s *servers) serve(ctx context.Context, k Kind) (*running, error) {
	path := s.cfg.SocketPath(k)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	id, _ := kubeletreg.StatID(path)
	r := &running{kind: k, srv: grpc.NewServer(), sock: id, stop: make(chan struct{}), served: make(chan struct{})}
	ep := &endpoint{kind: k, state: s.state, broker: s.broker, stop: r.stop,
		logger: klog.LoggerWithValues(klog.FromContext(ctx), "resource", k.Resource())}
	pluginapi.RegisterDevicePluginServer(r.srv, ep)
	go func() {
		defer close(r.served)
		if err := r.srv.Serve(lis); err != nil {
			klog.FromContext(ctx).Error(err, "Device plugin server stopped", "resource", k.Resource())
		}
	}()
	return r, nil
}

func (s *servers) register(ctx context.Context, k Kind) error {
	ep := &endpoint{kind: k}
	return kubeletreg.Register(ctx, filepath.Join(s.cfg.PluginDir, s.cfg.KubeletSocket), s.cfg.SocketPath(k), k.Resource(), ep.options(), s.cfg.DialTimeout)
}

func (s *servers) stopLocked() {
	for _, r := range s.running {
		close(r.stop)
		r.srv.Stop()
		<-r.served
		_ = os.Remove(s.cfg.SocketPath(r.kind))
	}
	s.running = nil
}

func (s *servers) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// needsRestart reports why the servers must be restarted and re-registered:
// kubelet re-created its socket (it restarted and wiped the directory), or
// one of our sockets vanished or was replaced. "" means all is well.
func (s *servers) needsRestart() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	kid, ok := kubeletreg.StatID(filepath.Join(s.cfg.PluginDir, s.cfg.KubeletSocket))
	if !ok {
		return "" // kubelet is down; wait for its socket to come back
	}
	if len(s.running) == 0 {
		return "not registered"
	}
	if kid != s.kubelet {
		return "kubelet restarted"
	}
	for _, r := range s.running {
		if id, ok := kubeletreg.StatID(s.cfg.SocketPath(r.kind)); !ok || id != r.sock {
			return "plugin socket removed"
		}
	}
	return ""
}

// watch re-registers whenever needsRestart says so, polling every tick.
func (s *servers) watch(ctx context.Context, tick <-chan time.Time) {
	logger := klog.FromContext(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		why := s.needsRestart()
		if why == "" {
			continue
		}
		logger.Info("Re-registering with kubelet", "reason", why)
		if err := s.start(ctx); err != nil {
			logger.Error(err, "Re-registration failed; retrying")
		}
	}
}
