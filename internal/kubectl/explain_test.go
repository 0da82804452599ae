package kubectl

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

func TestSchedulerFilter(t *testing.T) {
	taint := func(effect corev1.TaintEffect) []corev1.Taint {
		return []corev1.Taint{{Key: "gpu", Value: "reserved", Effect: effect}}
	}
	tolerate := []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "reserved"}}
	for _, tc := range []struct {
		name     string
		node     corev1.NodeSpec
		labels   map[string]string
		selector map[string]string
		tols     []corev1.Toleration
		want     string
	}{
		{name: "schedulable"},
		{name: "cordoned", node: corev1.NodeSpec{Unschedulable: true}, want: "node is cordoned (spec.unschedulable)"},
		{name: "NoSchedule taint", node: corev1.NodeSpec{Taints: taint(corev1.TaintEffectNoSchedule)},
			want: "node has a taint the pod does not tolerate (gpu=reserved:NoSchedule)"},
		{name: "NoExecute taint", node: corev1.NodeSpec{Taints: taint(corev1.TaintEffectNoExecute)},
			want: "node has a taint the pod does not tolerate (gpu=reserved:NoExecute)"},
		{name: "PreferNoSchedule only scores", node: corev1.NodeSpec{Taints: taint(corev1.TaintEffectPreferNoSchedule)}},
		{name: "tolerated taint", node: corev1.NodeSpec{Taints: taint(corev1.TaintEffectNoSchedule)}, tols: tolerate},
		{name: "selector matches", labels: map[string]string{"pool": "a100"}, selector: map[string]string{"pool": "a100"}},
		{name: "selector does not match", labels: map[string]string{"pool": "t4"}, selector: map[string]string{"pool": "a100"},
			want: "node does not match the pod's nodeSelector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := plainNode("n")
			n.Spec, n.Labels = tc.node, tc.labels
			p := gpuPod("p", 1, 0)
			p.Spec.NodeSelector, p.Spec.Tolerations = tc.selector, tc.tols
			if got := schedulerFilter(ktesting.NewLogger(t, ktesting.NewConfig()), p, n); got != tc.want {
				t.Errorf("schedulerFilter = %q, want %q", got, tc.want)
			}
		})
	}
}
