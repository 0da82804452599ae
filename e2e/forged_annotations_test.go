package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/api"
	"github.com/gpuslice/gpuslice/e2e/harness"
)

// oneGPU is a server with a single 16-slice GPU, so that "does the GPU look
// free" has a sharp answer.
func oneGPU() harness.Shape {
	return harness.Shape{Model: "E2E-1x16GB", MemoryMiB: 16384, GPUs: 1, Slots: 8, Isolation: api.IsolationMPS}
}

// annotationPatch is a JSON merge patch of pod annotations (a nil value
// removes the key).
func annotationPatch(t *testing.T, anns map[string]*string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": anns}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func strp(s string) *string { return &s }

// TestForgedAnnotations is issue 9's class 2 (the placement annotation is
// trusted). The admission policy rejects every way a user could write a
// gpuslice.io/* annotation; and with the policy bypassed (the write made as
// the device plugin's service account, which the policy exempts, or with
// the policy's binding removed) the extender does not free or steal shares.
func TestForgedAnnotations(t *testing.T) {
	c := startCluster(t, harness.Options{})

	t.Run("PolicyRejectsUsers", func(t *testing.T) {
		e := newEnv(t, c, oneGPU())
		e.create([]*corev1.Pod{e.one("bound", 4, 0, 0)}, 1)
		bound := e.waitBound(time.Minute, "bound")["bound"]
		pending := e.one("pending", 4, 0, 0)
		pending.Spec.SchedulerName = rbNoSchedule
		e.create([]*corev1.Pod{pending}, 1)
		forged := `{"version":"gpuslice.io/v1","node":"` + bound.Spec.NodeName + `","containers":[]}`
		dry := []string{metav1.DryRunAll}
		admin, dp, ext := c.Client, c.DevicePluginClient, c.ExtenderClient
		patch := func(cl kubernetes.Interface, anns map[string]*string, sub ...string) func(context.Context) error {
			return func(ctx context.Context) error {
				_, err := cl.CoreV1().Pods(e.ns).Patch(ctx, "bound", types.MergePatchType, annotationPatch(t, anns), metav1.PatchOptions{DryRun: dry}, sub...)
				return err
			}
		}
		createWith := func(anns map[string]string) func(context.Context) error {
			return func(ctx context.Context) error {
				p := e.one("new", 4, 0, 0)
				p.Annotations = anns
				_, err := admin.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{DryRun: dry})
				return err
			}
		}
		bind := func(cl kubernetes.Interface, anns map[string]string) func(context.Context) error {
			return func(ctx context.Context) error {
				b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: e.ns, Annotations: anns},
					Target: corev1.ObjectReference{Kind: "Node", Name: bound.Spec.NodeName}}
				return cl.CoreV1().Pods(e.ns).Bind(ctx, b, metav1.CreateOptions{DryRun: dry})
			}
		}
		for _, tc := range []struct {
			name   string
			do     func(context.Context) error
			reject string // "" = allowed
		}{
			{"user sets placement", patch(admin, map[string]*string{api.AnnotationPlacement: &forged}), api.AnnotationPlacement},
			{"user sets allocation record", patch(admin, map[string]*string{api.AnnotationAllocated: strp("{}")}), api.AnnotationAllocated},
			{"user removes placement", patch(admin, map[string]*string{api.AnnotationPlacement: nil}), "remove " + api.AnnotationPlacement},
			{"user sets another gpuslice.io key", patch(admin, map[string]*string{"gpuslice.io/anything": strp("x")}), "gpuslice.io/anything"},
			{"user sets placement through pods/status", patch(admin, map[string]*string{api.AnnotationPlacement: &forged}, "status"), api.AnnotationPlacement},
			{"user creates a pod with a placement", createWith(map[string]string{api.AnnotationPlacement: forged}), api.AnnotationPlacement},
			{"user binds with a placement", bind(admin, map[string]string{api.AnnotationPlacement: forged}), api.AnnotationPlacement},
			{"user sets gpu-models", patch(admin, map[string]*string{api.AnnotationGPUModels: strp("E2E-1x16GB")}), ""},
			{"user sets an unrelated annotation", patch(admin, map[string]*string{"example.com/note": strp("hi")}), ""},
			{"user creates a pod with gpu-models", createWith(map[string]string{api.AnnotationGPUModels: "E2E-1x16GB"}), ""},
			{"device plugin rewrites placement", patch(dp, map[string]*string{api.AnnotationPlacement: &forged}), ""},
			{"extender binds with a placement", bind(ext, map[string]string{api.AnnotationPlacement: forged}), ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.do(e.ctx)
				switch {
				case tc.reject == "" && err != nil:
					t.Fatalf("rejected: %v", err)
				case tc.reject == "":
				case err == nil:
					t.Fatalf("allowed; want the admission policy to reject it")
				case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
					t.Fatalf("error %v, want Forbidden by the admission policy", err)
				case !strings.Contains(err.Error(), harness.PolicyAnnotations) || !strings.Contains(err.Error(), tc.reject) || !strings.Contains(err.Error(), "gpuslice-system"):
					t.Fatalf("message %q does not name the policy, %q and who may write", err, tc.reject)
				default:
					t.Logf("rejected: %v", err)
				}
			})
		}
		// Nothing above stuck: the dry runs left the pod as it was.
		got, err := admin.CoreV1().Pods(e.ns).Get(e.ctx, "bound", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations[api.AnnotationPlacement] != bound.Annotations[api.AnnotationPlacement] {
			t.Errorf("placement changed: %s", got.Annotations[api.AnnotationPlacement])
		}
		e.invariant(e.ctx, nil)
	})

	// Two bound pods hold 12 of the 16 slices of each GPU of a 2-GPU node;
	// the first one's placement is then forged (by the device plugin's
	// identity, exempt from the policy, with no allocation record to
	// match). A pod that needs 8 slices fits the node's totals (so
	// kube-scheduler asks the extender) but no GPU: it must stay pending.
	for _, tc := range []struct {
		name  string
		forge func(truth *api.Placement)
	}{
		{"NonexistentGPU", func(pl *api.Placement) { pl.Containers[0].Devices[0].UUID = "GPU-00000000-0000-4000-8000-000000000000" }},
		{"ShrunkShare", func(pl *api.Placement) { pl.Containers[0].Devices[0].Slices = 1 }},
		{"NoContainers", func(pl *api.Placement) { pl.Containers = nil }},
	} {
		t.Run("Forged"+tc.name, func(t *testing.T) {
			e := newEnv(t, c, twoGPUs())
			e.create([]*corev1.Pod{e.one("holder", 12, 0, 0)}, 1)
			holder := e.waitBound(time.Minute, "holder")["holder"]
			e.create([]*corev1.Pod{e.one("other", 12, 0, 0)}, 1)
			e.waitBound(time.Minute, "other")
			truth := holder.Annotations[api.AnnotationPlacement]
			pl, err := api.ParsePlacement(truth)
			if err != nil {
				t.Fatal(err)
			}
			tc.forge(pl)
			b, err := json.Marshal(pl)
			if err != nil {
				t.Fatal(err)
			}
			fake := string(b)
			if _, err := c.DevicePluginClient.CoreV1().Pods(e.ns).Patch(e.ctx, "holder", types.MergePatchType,
				annotationPatch(t, map[string]*string{api.AnnotationPlacement: &fake}), metav1.PatchOptions{}); err != nil {
				t.Fatalf("forge as the device plugin: %v", err)
			}
			trusted := map[types.UID]string{holder.UID: truth}
			e.create([]*corev1.Pod{e.one("next", 8, 0, 0)}, 1)
			e.waitPending("next", trusted, time.Minute, string(allocator.ReasonInsufficientMemory))
			// Deleting the holder frees its real share: the pending pod binds.
			// Under load kube-scheduler may park the pod in its unschedulable
			// queue (up to 5 minutes) and miss the deletion; a label change
			// every few seconds only asks it to try again, it frees nothing.
			e.deletePods("holder")
			polls := 0
			e.poll("next bound after the holder is gone", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
				e.invariant(ctx, nil)
				p, err := c.Client.CoreV1().Pods(e.ns).Get(ctx, "next", metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				if polls++; p.Spec.NodeName == "" && polls%30 == 0 {
					nudge := []byte(fmt.Sprintf(`{"metadata":{"labels":{"gpuslice-e2e/retry":"%d"}}}`, polls))
					if _, err := c.Client.CoreV1().Pods(e.ns).Patch(ctx, "next", types.MergePatchType, nudge, metav1.PatchOptions{}); err != nil {
						return false, err
					}
				}
				return p.Spec.NodeName != "", nil
			})
		})
	}

	// A CPU-only pod created with spec.nodeName preset and a placement
	// claiming the whole GPU (the annotation policy suspended: users cannot
	// create it otherwise) does not make the node look full.
	t.Run("CPUOnlyPodWithForgedPlacement", func(t *testing.T) {
		e := newEnv(t, c, oneGPU())
		node := e.group + "-0"
		inv := e.inv[node]
		claim := api.Placement{Version: api.PlacementVersion, Node: node, AssignedAt: time.Now().UTC().Truncate(time.Second),
			Containers: []api.ContainerPlacement{{Name: "main", Devices: []api.DeviceShare{{UUID: inv.GPUs[0].UUID, Index: 0,
				Slices: inv.GPUs[0].Slices, Core: inv.GPUs[0].CoreUnits, Slots: inv.GPUs[0].Slots}}}}}
		b, err := json.Marshal(claim)
		if err != nil {
			t.Fatal(err)
		}
		restore := suspendPolicy(e.ctx, t, c, harness.PolicyAnnotations)
		squat := e.one("squatter", 0, 0, 0)
		squat.Spec.NodeName = node
		squat.Annotations = map[string]string{api.AnnotationPlacement: string(b)}
		created, err := c.Client.CoreV1().Pods(e.ns).Create(e.ctx, squat, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := restore(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.create([]*corev1.Pod{e.one("gpu-pod", 16, 0, 0)}, 1)
		e.poll("gpu-pod bound beside the squatter", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
			e.invariant(ctx, map[types.UID]string{created.UID: ""})
			p, err := c.Client.CoreV1().Pods(e.ns).Get(ctx, "gpu-pod", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return p.Spec.NodeName == node, fmt.Errorf("gpu-pod on %q", p.Spec.NodeName)
		})
		// Clean up before the env's checks: the squatter's placement is
		// not one the checks accept.
		e.deletePods("squatter")
	})
}
