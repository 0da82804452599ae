// Package kubeletreg owns what every device plugin server of gpuslice does
// with kubelet's registration socket: register an endpoint for a resource,
// and tell one incarnation of a socket file from the next (kubelet
// re-creates its socket when it restarts, and the servers must then
// register again). The GPU servers (package deviceplugin) and the host
// device servers (package hostdev) both use it.
package kubeletreg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// FileID identifies one incarnation of a file: a re-created socket has a
// new inode or change time.
type FileID struct {
	ino   uint64
	ctime int64
}

// StatID returns the incarnation of the file at path, and false when it
// does not exist.
func StatID(path string) (FileID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{ctime: fi.ModTime().UnixNano()}, true
	}
	return FileID{ino: st.Ino, ctime: st.Ctim.Nano()}, true
}

// Register registers the plugin socket endpoint (a path in kubelet's
// device plugin directory; kubelet is told its base name) for resource with
// kubelet's registration socket kubeletSocket, waiting at most timeout.
func Register(ctx context.Context, kubeletSocket, endpoint, resource string, opts *pluginapi.DevicePluginOptions, timeout time.Duration) error {
	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", kubeletSocket, err)
	}
	defer func() { _ = conn.Close() }()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(rctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(endpoint),
		ResourceName: resource,
		Options:      opts,
	}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("register %s with kubelet: %w", resource, err)
	}
	return nil
}
