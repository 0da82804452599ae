package trace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePods(t *testing.T) {
	in := "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" +
		"a,4000,100,1,500,\n" +
		"b,8000,100,2,1000,nan\n" +
		"c,2000,0,0,0,\n" +
		"d,1000,0,1,1000,V100M16|V100M32\n"
	got, err := ParsePods(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Pod{
		{Name: "a", CPUMilli: 4000, MemoryMiB: 100, NumGPU: 1, GPUMilli: 500},
		{Name: "b", CPUMilli: 8000, MemoryMiB: 100, NumGPU: 2, GPUMilli: 1000},
		{Name: "c", CPUMilli: 2000},
		{Name: "d", CPUMilli: 1000, NumGPU: 1, GPUMilli: 1000, Models: []string{"V100M16", "V100M32"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	if d := []int64{got[0].GPUDemand(), got[1].GPUDemand(), got[2].GPUDemand(), got[3].GPUDemand()}; !cmp.Equal(d, []int64{500, 2000, 0, 1000}) {
		t.Errorf("demands %v", d)
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"missing column":    "name,cpu_milli,num_gpu\na,1,1\n",
		"bad number":        "name,cpu_milli,num_gpu,gpu_milli\na,x,1,500\n",
		"negative":          "name,cpu_milli,num_gpu,gpu_milli\na,-1,1,500\n",
		"shared multi":      "name,cpu_milli,num_gpu,gpu_milli\na,1,2,500\n",
		"gpu without milli": "name,cpu_milli,num_gpu,gpu_milli\na,1,1,0\n",
		"empty":             "",
	} {
		if _, err := ParsePods(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadTestdata(t *testing.T) {
	pods, err := ReadPods("testdata/pods.csv")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := ReadNodes("testdata/nodes.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 300 || len(nodes) != 41 || GPUCount(nodes) != 188 {
		t.Errorf("got %d pods, %d nodes, %d GPUs", len(pods), len(nodes), GPUCount(nodes))
	}
	if _, err := ReadPods("testdata/absent.csv"); err == nil {
		t.Error("no error for a missing file")
	}
}

func TestWorkload(t *testing.T) {
	pods := []Pod{{Name: "a", NumGPU: 1, GPUMilli: 500}, {Name: "b", NumGPU: 2, GPUMilli: 1000}, {Name: "c", CPUMilli: 1}}
	w1, err := Workload(pods, 42, 13000)
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := Workload(pods, 42, 13000)
	if diff := cmp.Diff(w1, w2); diff != "" {
		t.Errorf("same seed, different workloads:\n%s", diff)
	}
	// The shuffled list comes first, whole.
	seen := map[string]bool{}
	for _, a := range w1[:3] {
		seen[a.Name] = true
	}
	if len(seen) != 3 {
		t.Errorf("first three arrivals %v are not the shuffled list", w1[:3])
	}
	var cum int64
	for i, a := range w1 {
		cum += a.GPUDemand()
		if a.Cumulative != cum {
			t.Fatalf("arrival %d cumulative %d, want %d", i, a.Cumulative, cum)
		}
	}
	if last := w1[len(w1)-1].Cumulative; last < 13000 || w1[len(w1)-2].Cumulative >= 13000 {
		t.Errorf("workload stops at %d, before it at %d; target 13000", last, w1[len(w1)-2].Cumulative)
	}
	w3, _ := Workload(pods, 43, 13000)
	if cmp.Equal(w1, w3) {
		t.Error("seeds 42 and 43 give the same workload")
	}
	// A target below the list's sum cuts the shuffled list.
	if w, _ := Workload(pods, 1, 400); len(w) > 3 {
		t.Errorf("target 400 gives %d arrivals", len(w))
	}
	if _, err := Workload([]Pod{{Name: "cpu"}}, 1, 10); err == nil {
		t.Error("no error for a workload without GPU")
	}
}
