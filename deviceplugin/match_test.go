package deviceplugin

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// listed is kubelet's pod-resources answer for pods it knows, with the
// devices each container holds ("container" -> resource -> ids).
type listed struct {
	pod  string
	devs map[string]map[string][]string
}

func prAnswer(ls ...listed) []*podresourcesv1.PodResources {
	var out []*podresourcesv1.PodResources
	for _, l := range ls {
		pr := &podresourcesv1.PodResources{Namespace: "default", Name: l.pod}
		for c, rs := range l.devs {
			cr := &podresourcesv1.ContainerResources{Name: c}
			for r, ids := range rs {
				cr.Devices = append(cr.Devices, &podresourcesv1.ContainerDevices{ResourceName: r, DeviceIds: ids})
			}
			pr.Containers = append(pr.Containers, cr)
		}
		out = append(out, pr)
	}
	return out
}

func memIDs(gpu int, from, n int64) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, DeviceID(gpuUUID(gpu), KindMem, i))
	}
	return out
}

// TestMatch exercises the pure matcher on snapshots built from pods and
// pod-resources answers: no broker, no fakes.
func TestMatch(t *testing.T) {
	a := podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}}
	b := podSpec{name: "b", assigned: t0.Add(time.Second), containers: []ctr{{name: "c", mem: 4, gpus: []int{1}}}}
	bypass := podSpec{name: "x", noPlace: true, containers: []ctr{{name: "c", mem: 4}}}
	sidecar := podSpec{name: "s", assigned: t0, containers: []ctr{
		{name: "side", sidecar: true, mem: 4, gpus: []int{2}}, {name: "app", mem: 4, gpus: []int{2}}}}
	tests := []struct {
		name    string
		pods    []podSpec
		pr      []*podresourcesv1.PodResources
		prErr   error
		ledger  []*ledgerEntry
		kind    Kind
		devs    []string
		want    string // "pod/container"
		wantErr string
	}{{
		name: "the placement's exact devices",
		pods: []podSpec{a}, pr: prAnswer(listed{pod: "a"}),
		devs: memIDs(0, 0, 4), want: "a/c",
	}, {
		name: "a placed pod kubelet does not list is not the one admitted",
		pods: []podSpec{a, b}, pr: prAnswer(listed{pod: "b"}),
		devs: memIDs(0, 0, 4), want: "b/c",
	}, {
		name: "placed pod not listed at all: no candidate",
		pods: []podSpec{a}, pr: prAnswer(),
		devs: memIDs(0, 0, 4), wantErr: "kubelet does not list its pod yet",
	}, {
		name: "both listed and unstarted: exact placement wins over the earlier placement",
		pods: []podSpec{a, b}, pr: prAnswer(listed{pod: "a"}, listed{pod: "b"}),
		devs: memIDs(1, 0, 4), want: "b/c",
	}, {
		name: "both listed, neither exact: the earlier placement",
		pods: []podSpec{a, b}, pr: prAnswer(listed{pod: "a"}, listed{pod: "b"}),
		devs: memIDs(3, 0, 4), want: "a/c",
	}, {
		name: "bypass pod listed: refused even though a placed twin would fit",
		pods: []podSpec{a, bypass}, pr: prAnswer(listed{pod: "a"}, listed{pod: "x"}),
		devs: memIDs(0, 0, 4), wantErr: "must not take a placed pod's share",
	}, {
		name: "bypass pod not listed yet: the placed pod is served",
		pods: []podSpec{a, bypass}, pr: prAnswer(listed{pod: "a"}),
		devs: memIDs(0, 0, 4), want: "a/c",
	}, {
		name: "pod-resources down: a bypass pod on the node refuses every call (fail closed)",
		pods: []podSpec{a, bypass}, prErr: errors.New("down"),
		devs: memIDs(0, 0, 4), wantErr: "must not take a placed pod's share",
	}, {
		name: "sidecar first: the first call of the pod is the sidecar's",
		pods: []podSpec{sidecar}, pr: prAnswer(listed{pod: "s"}),
		devs: memIDs(2, 0, 4), want: "s/side",
	}, {
		name: "sidecar holds its devices: the next call is the app container's",
		pods: []podSpec{sidecar},
		pr:   prAnswer(listed{pod: "s", devs: map[string]map[string][]string{"side": {KindMem.Resource(): memIDs(2, 0, 4)}}}),
		devs: memIDs(2, 4, 4), want: "s/app",
	}, {
		name: "sidecar allocated in this process only (ledger): the app container is next",
		pods: []podSpec{sidecar}, pr: prAnswer(listed{pod: "s"}),
		ledger: []*ledgerEntry{{key: ContainerKey{Namespace: "default", Pod: "s", UID: "uid-s", Container: "side", Init: true}, kind: KindMem, ids: memIDs(2, 0, 4)}},
		devs:   memIDs(2, 4, 4), want: "s/app",
	}, {
		name: "devices of the wrong size fit nobody",
		pods: []podSpec{a}, pr: prAnswer(listed{pod: "a"}),
		devs: memIDs(0, 0, 3), wantErr: "no container on node node-a",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pods []*corev1.Pod
			for _, ps := range tc.pods {
				pods = append(pods, makePod(ps))
			}
			s := buildSnapshot(testNode, pods, tc.prErr == nil, tc.pr, tc.prErr, tc.ledger)
			d := dist{}
			for _, id := range tc.devs {
				u, _, _, _ := ParseDeviceID(id)
				d[u] = append(d[u], id)
			}
			c, err := s.match(tc.kind, d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("match: %v, %v; want an error containing %q", c, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("match: %v", err)
			}
			if got := c.key.Pod + "/" + c.key.Container; got != tc.want {
				t.Errorf("matched %s, want %s", got, tc.want)
			}
		})
	}
}
