package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"

	"github.com/gpuslice/gpuslice/deviceplugin"
)

// dpKubelet is the part of a kubelet the device plugin talks to, run
// in-process from kubelet's own code: the device manager
// (pkg/kubelet/cm/devicemanager, serving kubelet.sock in
// /var/lib/kubelet/device-plugins) and the pod-resources v1 server
// (pkg/kubelet/apis/podresources) on a private socket. Pods are "admitted"
// the way kubelet's topology-manager admit handler does it: Allocate for
// every init container, then every app container.
type dpKubelet struct {
	t      *testing.T
	logger klog.Logger
	prSock string

	mu   sync.Mutex
	dm   *devicemanager.ManagerImpl
	pods []*corev1.Pod
	pr   *grpc.Server
}

type readySources struct{}

func (readySources) AddSource(string) {}
func (readySources) AllReady() bool   { return true }

// pluginDirOwned prepares kubelet's device plugin directory for the test:
// it refuses to run beside a real kubelet and removes what it created.
func pluginDirOwned(t *testing.T) {
	t.Helper()
	dir := pluginapi.DevicePluginPath
	if _, err := os.Stat(pluginapi.KubeletSocket); err == nil {
		t.Fatalf("%s exists: a kubelet runs on this machine; the device plugin e2e test needs the directory to itself", pluginapi.KubeletSocket)
	}
	created := ""
	for _, d := range []string{"/var/lib/kubelet", dir} {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			created = d
			break
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatalf("device plugin directory: %v (the test must run as root)", err)
	}
	t.Cleanup(func() {
		if created != "" {
			_ = os.RemoveAll(created)
			return
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			_ = os.Remove(dir + e.Name())
		}
	})
}

func startDPKubelet(t *testing.T, prSock string) *dpKubelet {
	t.Helper()
	k := &dpKubelet{t: t, logger: klog.Background().WithName("kubelet"), prSock: prSock}
	k.startDM()
	lis, err := net.Listen("unix", prSock)
	if err != nil {
		t.Fatal(err)
	}
	k.pr = grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(k.pr, podresources.NewV1PodResourcesServer(context.Background(), podresources.PodResourcesProviders{
		Pods: k, Devices: k, Cpus: noResources{}, Memory: noResources{}, DynamicResources: noResources{},
	}))
	go func() { _ = k.pr.Serve(lis) }()
	t.Cleanup(func() {
		k.pr.Stop()
		k.mu.Lock()
		defer k.mu.Unlock()
		_ = k.dm.Stop(k.logger)
	})
	return k
}

func (k *dpKubelet) startDM() {
	dm, err := devicemanager.NewManagerImpl(k.logger, nil, topologymanager.NewFakeManager(k.logger))
	if err != nil {
		k.t.Fatalf("device manager: %v", err)
	}
	if err := dm.Start(k.logger, k.GetActivePods, readySources{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		k.t.Fatalf("start device manager: %v", err)
	}
	k.mu.Lock()
	k.dm = dm
	k.mu.Unlock()
}

// restart stops the device manager and starts a new one, as a kubelet
// restart does: it wipes the plugin directory (but its checkpoint) and
// re-creates kubelet.sock; the new manager reads the checkpoint.
func (k *dpKubelet) restart() {
	k.mu.Lock()
	old := k.dm
	k.mu.Unlock()
	if err := old.Stop(k.logger); err != nil {
		k.t.Fatalf("stop device manager: %v", err)
	}
	k.startDM()
}

func (k *dpKubelet) manager() *devicemanager.ManagerImpl {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dm
}

// allocatable returns the device manager's allocatable count of a resource.
func (k *dpKubelet) allocatable(resource string) int64 {
	_, alloc, _ := k.manager().GetCapacity(k.logger)
	q := alloc[corev1.ResourceName(resource)]
	return q.Value()
}

// admit allocates the pod's containers (init first) through the device
// manager; the pod becomes active (visible to pod-resources) first, as in
// kubelet, where the pod manager knows the pod before admission.
func (k *dpKubelet) admit(ctx context.Context, p *corev1.Pod) error {
	k.mu.Lock()
	k.pods = append(k.pods, p)
	dm := k.dm
	k.mu.Unlock()
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if err := dm.Allocate(ctx, p, &cs[i], lifecycle.AddOperation); err != nil {
				k.forget(p)
				return fmt.Errorf("allocate %s: %w", cs[i].Name, err)
			}
		}
	}
	return nil
}

func (k *dpKubelet) forget(p *corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, q := range k.pods {
		if q.UID == p.UID {
			k.pods = append(k.pods[:i], k.pods[i+1:]...)
			return
		}
	}
}

// runOptions is what the runtime would receive for the container (this
// also calls the plugin's PreStartContainer).
func (k *dpKubelet) runOptions(ctx context.Context, p *corev1.Pod, c *corev1.Container) (*devicemanager.DeviceRunContainerOptions, error) {
	return k.manager().GetDeviceRunContainerOptions(ctx, p, c)
}

// mustRunOptions is runOptions for the pod's first container; an error
// fails the test.
func (k *dpKubelet) mustRunOptions(ctx context.Context, t *testing.T, p *corev1.Pod) *devicemanager.DeviceRunContainerOptions {
	t.Helper()
	opts, err := k.runOptions(ctx, p, &p.Spec.Containers[0])
	if err != nil {
		t.Fatalf("run options of %s: %v", p.Name, err)
	}
	return opts
}

// admitRun admits the pod and returns the run options of its first
// container; an error in either fails the test.
func (k *dpKubelet) admitRun(ctx context.Context, t *testing.T, p *corev1.Pod) *devicemanager.DeviceRunContainerOptions {
	t.Helper()
	if err := k.admit(ctx, p); err != nil {
		t.Fatalf("admit %s: %v", p.Name, err)
	}
	return k.mustRunOptions(ctx, t, p)
}

// GetActivePods implements podresources.PodsProvider.
func (k *dpKubelet) GetActivePods() []*corev1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*corev1.Pod(nil), k.pods...)
}

// GetPods implements podresources.PodsProvider.
func (k *dpKubelet) GetPods() []*corev1.Pod { return k.GetActivePods() }

// GetPodByName implements podresources.PodsProvider.
func (k *dpKubelet) GetPodByName(ns, name string) (*corev1.Pod, bool) {
	for _, p := range k.GetActivePods() {
		if p.Namespace == ns && p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// UpdateAllocatedDevices implements podresources.DevicesProvider.
func (k *dpKubelet) UpdateAllocatedDevices(logger klog.Logger) {
	k.manager().UpdateAllocatedDevices(logger)
}

func containerDevices(rdi devicemanager.ResourceDeviceInstances) []*podresourcesv1.ContainerDevices {
	var out []*podresourcesv1.ContainerDevices
	for res, devs := range rdi {
		cd := &podresourcesv1.ContainerDevices{ResourceName: res}
		for id := range devs {
			cd.DeviceIds = append(cd.DeviceIds, id)
		}
		out = append(out, cd)
	}
	return out
}

// GetDevices implements podresources.DevicesProvider.
func (k *dpKubelet) GetDevices(podUID, container string) []*podresourcesv1.ContainerDevices {
	return containerDevices(k.manager().GetDevices(podUID, container))
}

// GetAllocatableDevices implements podresources.DevicesProvider.
func (k *dpKubelet) GetAllocatableDevices(logger klog.Logger) []*podresourcesv1.ContainerDevices {
	return containerDevices(k.manager().GetAllocatableDevices(logger))
}

type noResources struct{}

func (noResources) GetCPUs(*corev1.Pod, *corev1.Container) []int64 { return nil }
func (noResources) GetPodCPUs(string) []int64                      { return nil }
func (noResources) GetAllocatableCPUs() []int64                    { return nil }
func (noResources) GetMemory(klog.Logger, *corev1.Pod, *corev1.Container) []*podresourcesv1.ContainerMemory {
	return nil
}
func (noResources) GetPodMemory(klog.Logger, string) []*podresourcesv1.ContainerMemory { return nil }
func (noResources) GetAllocatableMemory(klog.Logger) []*podresourcesv1.ContainerMemory { return nil }
func (noResources) GetDynamicResources(klog.Logger, *corev1.Pod, *corev1.Container) []*podresourcesv1.DynamicResource {
	return nil
}

// visibleGPUs returns the GPUs the runtime would give a container, from
// what kubelet's device manager passes it: under the plugin's default cdi
// strategy the CDI devices (<kind>=<uuid>, with NVIDIA_VISIBLE_DEVICES
// void so that a legacy toolkit hook adds none), under envvar the
// variable. A container without gpuslice devices returns nil.
func visibleGPUs(opts *devicemanager.DeviceRunContainerOptions) ([]string, error) {
	var env string
	for _, ev := range opts.Envs {
		if ev.Name == deviceplugin.EnvNVIDIAVisibleDevices {
			env = ev.Value
		}
	}
	if len(opts.CDIDevices) == 0 {
		if env == "" || env == "void" {
			return nil, nil
		}
		return strings.Split(env, ","), nil
	}
	if env != "void" {
		return nil, fmt.Errorf("CDI devices %v with NVIDIA_VISIBLE_DEVICES=%q, want void", opts.CDIDevices, env)
	}
	kind := deviceplugin.DefaultConfig().CDIKind
	var out []string
	for _, d := range opts.CDIDevices {
		u, ok := strings.CutPrefix(d.Name, kind+"=")
		if !ok {
			return nil, fmt.Errorf("CDI device %q is not of kind %s", d.Name, kind)
		}
		out = append(out, u)
	}
	return out, nil
}
