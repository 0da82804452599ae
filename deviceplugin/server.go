package deviceplugin

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// endpoint is the device plugin gRPC service of one kind.
type endpoint struct {
	pluginapi.UnimplementedDevicePluginServer
	kind   Kind
	state  *State
	broker *Broker
	logger klog.Logger
	stop   <-chan struct{}
}

var _ pluginapi.DevicePluginServer = (*endpoint)(nil)

func (e *endpoint) options() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{
		// gpu-mem carries the container's environment; PreStartContainer
		// verifies it went to the container it was prepared for.
		PreStartRequired:                e.kind == KindMem,
		GetPreferredAllocationAvailable: true,
	}
}

func (e *endpoint) ctx(ctx context.Context) context.Context {
	return klog.NewContext(ctx, e.logger)
}

// GetDevicePluginOptions implements DevicePluginServer.
func (e *endpoint) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return e.options(), nil
}

// ListAndWatch implements DevicePluginServer: the devices, re-sent at every
// health change.
func (e *endpoint) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	for {
		gpus, changed := e.state.Snapshot()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: BuildDevices(gpus, e.kind)}); err != nil {
			return fmt.Errorf("send %s devices: %w", e.kind.Resource(), err)
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		case <-e.stop:
			return nil
		}
	}
}

// GetPreferredAllocation implements DevicePluginServer.
func (e *endpoint) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.GetContainerRequests() {
		ids, err := e.broker.Preferred(e.ctx(ctx), e.kind, cr.GetAvailableDeviceIDs(), cr.GetMustIncludeDeviceIDs(), int(cr.GetAllocationSize()))
		if err != nil {
			return nil, err
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// Allocate implements DevicePluginServer.
func (e *endpoint) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.GetContainerRequests() {
		r, err := e.broker.Allocate(e.ctx(ctx), e.kind, cr.GetDevicesIds())
		if err != nil {
			return nil, err
		}
		resp.ContainerResponses = append(resp.ContainerResponses, r)
	}
	return resp, nil
}

// PreStartContainer implements DevicePluginServer.
func (e *endpoint) PreStartContainer(ctx context.Context, req *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	if e.kind != KindMem {
		return &pluginapi.PreStartContainerResponse{}, nil
	}
	if err := e.broker.PreStart(e.ctx(ctx), req.GetDevicesIds()); err != nil {
		return nil, err
	}
	return &pluginapi.PreStartContainerResponse{}, nil
}
