package app

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpuslice/gpuslice/api"
)

// A slim node keeps its identity and gpuslice annotations (the inventory),
// and nothing else.
func TestSlimNode(t *testing.T) {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "n-uid", ResourceVersion: "7", Annotations: map[string]string{api.AnnotationInventory: "{}", "node.alpha/x": "y"}},
		Status:     v1.NodeStatus{Images: []v1.ContainerImage{{Names: []string{"a"}}}},
	}
	gotNode, err := slimNode(node)
	if err != nil {
		t.Fatal(err)
	}
	wantNode := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "n-uid", ResourceVersion: "7", Annotations: map[string]string{api.AnnotationInventory: "{}"}}}
	if diff := cmp.Diff(wantNode, gotNode); diff != "" {
		t.Errorf("slim node (-want +got):\n%s", diff)
	}
	other := &v1.Service{}
	if got, _ := slimNode(other); got != other {
		t.Errorf("a non-node object was changed")
	}
}
