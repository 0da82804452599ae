package deviceplugin

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/tools/events"

	"github.com/gpuslice/gpuslice/deviceplugin/metrics"
)

// TestBrokerObserved: kubelet's calls are counted per resource and result,
// and a pod that bypassed the extender gets an event saying it was refused
// (at GetPreferredAllocation, kubelet's first call), while the placed
// twin's calls succeed.
func TestBrokerObserved(t *testing.T) {
	o := newObserved(t)
	if err := o.sim.admit(o.pods.get("default", "x"), nil); err == nil {
		t.Fatal("the bypassing pod was admitted")
	}
	if err := o.sim.admit(o.pods.get("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{
		"mem ok":                promtest.ToFloat64(o.m.AllocateCounter().WithLabelValues(KindMem.Resource(), metrics.ResultOK)),
		"preferred mem refused": promtest.ToFloat64(o.m.PreferredCounter().WithLabelValues(KindMem.Resource(), metrics.ResultRefused)),
		"preferred mem ok":      promtest.ToFloat64(o.m.PreferredCounter().WithLabelValues(KindMem.Resource(), metrics.ResultOK)),
	}
	if diff := cmp.Diff(map[string]float64{"mem ok": 1, "preferred mem refused": 1, "preferred mem ok": 1}, got); diff != "" {
		t.Errorf("allocate counts (-want +got):\n%s", diff)
	}
	o.wantRefusal(t, EventAllocateRefused)
}

// TestMetricsSourceReportsGPUs: the scrape-time series follow the state:
// health per GPU and NVML's memory use.
func TestMetricsSourceReportsGPUs(t *testing.T) {
	st := testState(t, 2, 16*1024, noIso)
	st.SetHealth(gpuUUID(1), SourceNVML, false, "Xid 79")
	p := &Plugin{state: st, deps: Deps{Isolator: noIso, Memory: fakeMemory{}}}
	m := metrics.New()
	m.SetSource(p.metricsSource())
	const want = `
# HELP gpuslice_device_plugin_gpu_healthy 1 while the GPU is healthy (NVML health and its isolator), else 0; an unhealthy GPU takes no new pods.
# TYPE gpuslice_device_plugin_gpu_healthy gauge
gpuslice_device_plugin_gpu_healthy{gpu="0",model="Test GPU",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1
gpuslice_device_plugin_gpu_healthy{gpu="1",model="Test GPU",uuid="GPU-00000001-0000-0000-0000-000000000000"} 0
# HELP gpuslice_device_plugin_gpu_memory_used_bytes GPU memory in use as NVML reports it, to compare with the allocated slices.
# TYPE gpuslice_device_plugin_gpu_memory_used_bytes gauge
gpuslice_device_plugin_gpu_memory_used_bytes{gpu="0",model="Test GPU",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1024
gpuslice_device_plugin_gpu_memory_used_bytes{gpu="1",model="Test GPU",uuid="GPU-00000001-0000-0000-0000-000000000000"} 1024
`
	if err := promtest.GatherAndCompare(m.Registry(), strings.NewReader(want), metrics.GPUHealthy, metrics.MemoryUsedBytes); err != nil {
		t.Error(err)
	}
	if n := promtest.CollectAndCount(m.Registry(), metrics.MPSDaemonHealthy); n != 0 {
		t.Errorf("%d MPS daemon series without MPS isolation, want 0", n)
	}
}

var noIso = NoIsolation{SlotsPerGPU: 8}

// observed is a broker with metrics and an event recorder, on a node with
// pod a (placed on GPU 0) and pod x (no placement: it bypassed the
// extender).
type observed struct {
	b    *Broker
	pods *fakePods
	pr   *fakePR
	m    *metrics.Metrics
	rec  *events.FakeRecorder
	sim  *simKubelet
}

func newObserved(t *testing.T) *observed {
	t.Helper()
	cfg := testConfig()
	st := testState(t, 4, 16*1024, noIso)
	o := &observed{pods: &fakePods{}, pr: newFakePR(), m: metrics.New(), rec: events.NewFakeRecorder(10)}
	o.pods.add(makePod(podSpec{name: "a", assigned: t0, containers: []ctr{{name: "c", mem: 4, gpus: []int{0}}}}))
	o.pods.add(makePod(podSpec{name: "x", noPlace: true, containers: []ctr{{name: "c", mem: 4}}}))
	o.b = NewBroker(&cfg, st, noIso, o.pods, o.pr)
	o.b.obs = observers{metrics: o.m, events: o.rec, node: cfg.NodeName}
	o.sim = newSim(t, o.b, o.pr, st)
	return o
}

// wantRefusal checks that the next event is a reason warning on pod x.
func (o *observed) wantRefusal(t *testing.T, reason string) {
	t.Helper()
	select {
	case e := <-o.rec.Events:
		if !strings.HasPrefix(e, "Warning "+reason+" ") || !strings.Contains(e, "default/x") {
			t.Errorf("event %q, want a %s warning naming default/x", e, reason)
		}
	default:
		t.Errorf("no %s event for default/x", reason)
	}
}

type fakeMemory struct{}

func (fakeMemory) MemoryInfo(string) (used, total uint64, err error) { return 1024, 16 << 30, nil }

// daemonsDown is an MPS-mode isolator whose daemon of one GPU is down.
type daemonsDown struct {
	mpsLike
	down string
}

func (d daemonsDown) Healthy(uuid string) (bool, string) {
	if uuid == d.down {
		return false, "control daemon does not answer"
	}
	return true, ""
}

// TestMetricsSourceReportsMPSDaemons: under MPS every GPU has a daemon
// series, 0 for the GPU whose daemon is down.
func TestMetricsSourceReportsMPSDaemons(t *testing.T) {
	iso := daemonsDown{down: gpuUUID(1)}
	p := &Plugin{state: testState(t, 2, 16*1024, noIso), deps: Deps{Isolator: iso}}
	m := metrics.New()
	m.SetSource(p.metricsSource())
	const want = `
# HELP gpuslice_device_plugin_mps_daemon_healthy 1 while the GPU's MPS control daemon answers its probe, else 0 (isolation mps only).
# TYPE gpuslice_device_plugin_mps_daemon_healthy gauge
gpuslice_device_plugin_mps_daemon_healthy{gpu="0",model="Test GPU",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1
gpuslice_device_plugin_mps_daemon_healthy{gpu="1",model="Test GPU",uuid="GPU-00000001-0000-0000-0000-000000000000"} 0
`
	if err := promtest.GatherAndCompare(m.Registry(), strings.NewReader(want), metrics.MPSDaemonHealthy); err != nil {
		t.Error(err)
	}
}

// TestPreStartRefusalObserved: a PreStart for devices that pod-resources
// now attributes to a pod without a placement (kubelet handed them to the
// wrong pod) is refused, counted and recorded as an event on that pod.
func TestPreStartRefusalObserved(t *testing.T) {
	o := newObserved(t)
	if err := o.sim.admit(o.pods.get("default", "a"), nil); err != nil {
		t.Fatal(err)
	}
	ids := o.pr.devs["default/a"]["c"][KindMem.Resource()]
	if len(ids) == 0 {
		t.Fatal("pod-resources has no gpu-mem devices for default/a")
	}
	o.pr.drop("default", "a")
	o.pr.set("default", "x", "c", KindMem.Resource(), ids)
	if err := o.b.PreStart(t.Context(), ids); err == nil {
		t.Fatal("PreStart accepted devices now held by a pod without a placement")
	}
	if got := promtest.ToFloat64(o.m.PreStartCounter().WithLabelValues(metrics.ResultRefused)); got != 1 {
		t.Errorf("refused PreStarts = %v, want 1", got)
	}
	o.wantRefusal(t, EventPreStartRefused)
}
