package health

import (
	"context"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/google/go-cmp/cmp"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gpuslice/gpuslice/deviceplugin/device"
	"github.com/gpuslice/gpuslice/deviceplugin/nvml"
)

type fakeProber struct {
	mu   sync.Mutex
	errs map[string]error
}

func (f *fakeProber) Probe(uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs[uuid]
}

func (f *fakeProber) set(uuid string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[uuid] = err
}

func drain(m *Monitor) []device.HealthEvent {
	var out []device.HealthEvent
	for {
		select {
		case e := <-m.Events():
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestMonitorClasses(t *testing.T) {
	lost := &nvml.Error{Op: "GetMemoryInfo", Ret: gonvml.ERROR_GPU_IS_LOST}
	type step struct {
		xid     uint64
		lost    *bool
		advance time.Duration
		want    []device.HealthEvent
	}
	yes, no := true, false
	tests := []struct {
		name  string
		steps []step
	}{
		{"application xid ignored", []step{{xid: 13}, {xid: 43}}},
		{"fatal xid sticks until the GPU returns", []step{
			{xid: 79, want: []device.HealthEvent{{UUID: "a", Reason: "Xid 79 (fatal: needs a GPU reset)"}}},
			{advance: time.Hour},
			{lost: &yes, want: []device.HealthEvent{{UUID: "a", Reason: "GPU lost: " + lost.Error()}}},
			{lost: &no, want: []device.HealthEvent{{UUID: "a", Healthy: true}}},
		}},
		{"transient xid recovers after the hold", []step{
			{xid: 94, want: []device.HealthEvent{{UUID: "a", Reason: "Xid 94 (transient)"}}},
			{advance: 4 * time.Minute},
			{advance: time.Minute, want: []device.HealthEvent{{UUID: "a", Healthy: true}}},
		}},
		{"disappearing GPU", []step{
			{lost: &yes, want: []device.HealthEvent{{UUID: "a", Reason: "GPU lost: " + lost.Error()}}},
			{advance: time.Minute},
			{lost: &no, want: []device.HealthEvent{{UUID: "a", Healthy: true}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := testingclock.NewFakeClock(time.Unix(1000, 0))
			p := &fakeProber{errs: map[string]error{}}
			m := NewMonitor(nil, p, clk, DefaultConfig(), []string{"a", "b"})
			for i, s := range tc.steps {
				if s.xid != 0 {
					m.HandleXid(ctx, "a", s.xid)
				}
				if s.lost != nil {
					if *s.lost {
						p.set("a", lost)
					} else {
						p.set("a", nil)
					}
				}
				clk.Step(s.advance)
				m.ProbeAll(ctx)
				if diff := cmp.Diff(s.want, drain(m)); diff != "" {
					t.Errorf("step %d events (-want +got):\n%s", i, diff)
				}
			}
			if ok, _ := m.Status("b"); !ok {
				t.Errorf("GPU b became unhealthy")
			}
		})
	}
}

func TestEventLoopXid(t *testing.T) {
	s := dgxa100.New()
	dev := s.Devices[2].(*dgxa100.Device)
	events := make(chan gonvml.EventData, 1)
	events <- gonvml.EventData{Device: dev, EventType: gonvml.EventTypeXidCriticalError, EventData: 48}
	set := &mock.EventSet{
		WaitFunc: func(uint32) (gonvml.EventData, gonvml.Return) {
			select {
			case e := <-events:
				return e, gonvml.SUCCESS
			default:
				return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
	}
	s.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) { return set, gonvml.SUCCESS }
	var uuids []string
	for _, d := range s.Devices {
		d := d.(*dgxa100.Device)
		d.RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
		uuids = append(uuids, d.UUID)
	}
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	m := NewMonitor(s, &fakeProber{errs: map[string]error{}}, clk, DefaultConfig(), uuids)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	select {
	case e := <-m.Events():
		want := device.HealthEvent{UUID: dev.UUID, Reason: "Xid 48 (fatal: needs a GPU reset)"}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("event (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health event within 10s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
