package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/deviceplugin"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// TestBypass is issue 9's class 8 (bypassing the extender). A pod that
// requests gpuslice resources with spec.nodeName preset is rejected by the
// admission policy at create, in any container; and with the policy
// suspended it is refused at Allocate by the device plugin and does not
// take the devices of a placed pod of the same shape waiting on the node.
func TestBypass(t *testing.T) {
	c, d := startDPCluster(t)

	t.Run("PolicyRejects", func(t *testing.T) {
		always := corev1.ContainerRestartPolicyAlways
		sidecar := d.pod("x", ctr{name: "side", init: true, count: 1, mem: 1}, ctr{name: "main"})
		sidecar.Spec.InitContainers[0].RestartPolicy = &always
		for _, tc := range []struct {
			name   string
			pod    *corev1.Pod
			preset bool
			reject bool
			// badShape: the request breaks the contract as well.
			badShape bool
		}{
			{"app container gpu-mem", d.one("x", 2, 0, 0), true, true, false},
			{"app container gpu-core", d.one("x", 0, 50, 0), true, true, true},
			{"app container gpu-count", d.one("x", 0, 0, 1), true, true, true},
			{"second app container", d.pod("x", ctr{name: "a"}, ctr{name: "b", mem: 1}), true, true, false},
			{"init container", d.pod("x", ctr{name: "i", init: true, mem: 1}, ctr{name: "main"}), true, true, false},
			{"sidecar", sidecar, true, true, false},
			{"CPU-only pod on a node", d.one("x", 0, 0, 0), true, false, false},
			{"GPU pod left to the scheduler", d.one("x", 2, 0, 0), false, false, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.preset {
					tc.pod.Spec.NodeName = d.node
				}
				_, err := c.Client.CoreV1().Pods(d.ns).Create(d.ctx, tc.pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				switch {
				case !tc.reject && err != nil:
					t.Fatalf("rejected: %v", err)
				case !tc.reject:
				case err == nil:
					t.Fatal("allowed; want the admission policy to reject it")
				case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
					t.Fatalf("error %v, want Forbidden", err)
				case tc.badShape && strings.Contains(err.Error(), harness.PolicyRequestShape):
					// gpu-core or gpu-count without gpu-mem breaks the
					// contract too; the API server reports the first
					// policy that denies.
					t.Logf("rejected (request shape): %v", err)
				case !strings.Contains(err.Error(), harness.PolicyNoPresetNode) || !strings.Contains(err.Error(), "spec.nodeName"):
					t.Fatalf("message %q does not name the policy and spec.nodeName", err)
				default:
					t.Logf("rejected: %v", err)
				}
			})
		}
	})

	t.Run("RefusedAtAllocate", func(t *testing.T) {
		d.create([]*corev1.Pod{d.one("placed", 4, 0, 0)}, 1)
		d.waitBound(time.Minute, "placed")

		// In its own namespace: the env's checks reject bound GPU pods
		// without a placement.
		ns := d.ns + "-bypass"
		if _, err := c.Client.CoreV1().Namespaces().Create(d.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			zero := int64(0)
			_ = c.Client.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		})
		restore := suspendPolicy(d.ctx, t, c, harness.PolicyNoPresetNode)
		p := d.one("bypass", 4, 0, 0)
		p.Namespace = ns
		p.Spec.NodeName = d.node
		created, err := c.Client.CoreV1().Pods(ns).Create(d.ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := restore(d.ctx); err != nil {
			t.Fatal(err)
		}
		// Let the plugin's pod informer see the pod: it is visible to
		// its service account's reads first.
		d.poll("bypass pod visible to the device plugin", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
			_, err := c.DevicePluginClient.CoreV1().Pods(ns).Get(ctx, "bypass", metav1.GetOptions{})
			return err == nil, err
		})
		// Allocate only (kubelet admission): refusing it later, at
		// PreStartContainer, would leave it holding kubelet devices.
		if err := d.kl.admit(d.ctx, created); err == nil {
			t.Fatalf("a pod that bypassed the extender passed Allocate (it holds %v)", d.kl.manager().GetDevices(string(created.UID), "main"))
		} else {
			t.Logf("bypass refused at Allocate: %v", err)
		}
		if devs := d.kl.manager().GetDevices(string(created.UID), "main"); len(devs) > 0 {
			t.Errorf("the refused pod keeps kubelet devices %v", devs)
		}
		// The refusal is an event on the pod, as `kubectl get events`
		// shows it.
		waitEvent(t, d.env, ns, "bypass", deviceplugin.EventAllocateRefused, "gpuslice-device-plugin")
		// The placed pod of the same shape still gets what its placement says.
		got := d.admitChecked("placed")
		if got.Annotations[api.AnnotationAllocated] == "" {
			t.Fatal("placed pod has no allocation record")
		}
	})
}
