package sim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gpuslice/gpuslice/allocator"
	"github.com/gpuslice/gpuslice/internal/trace"
)

// DefaultSamples is the number of times a departures run reports the
// allocation at.
const DefaultSamples = 25

// Sample is the cluster at one time of a departures run.
type Sample struct {
	// Time is seconds from the trace's start.
	Time int64
	// Alloc is the allocated GPU in percent of the cluster's (milli-GPU in
	// milli mode, GiB in gib mode); PartlyFree the free GPU on partly used
	// GPUs (allocator.PartlyFree, the same measure for every policy), in
	// percent of the cluster's GPUs.
	Alloc, PartlyFree float64
	// Running is the number of pods placed and not yet deleted; Failed the
	// number of pods that could not be placed when they arrived, so far.
	Running, Failed int
}

// DepartureRun is one policy on the trace's own timeline: every pod of the
// list arrives at its creation_time and leaves at its deletion_time.
type DepartureRun struct {
	Policy string
	Seed   uint64
	Units  Units
	// Pods, Placed and Failed count the pods of the list; FailedGPUs is the
	// GPU demand of the failed pods, in GPUs (num_gpu, or gpu_milli/1000).
	Pods, Placed, Failed int
	FailedGPUs           float64
	// Samples are taken at evenly spaced times from the first to the last
	// creation time, both included.
	Samples []Sample
	// PeakAlloc is the highest allocation after any event; MeanAlloc and
	// MeanPartlyFree average the samples; FinalAlloc is the last sample's
	// (at the last arrival).
	PeakAlloc, MeanAlloc, FinalAlloc, MeanPartlyFree float64
	PlaceTime                                        time.Duration
}

// event is a pod's arrival or departure; kind orders events of the same
// time: departures first (they free what arrivals may use), then arrivals,
// then the departures of pods deleted when they were created.
type event struct {
	time int64
	kind int
	pod  int
}

const (
	evDepart = iota
	evArrive
	evDepartAtOnce
)

// timeline returns the pods' events in replay order.
func timeline(pods []trace.Pod) ([]event, error) {
	evs := make([]event, 0, 2*len(pods))
	deletes := false
	for i, p := range pods {
		evs = append(evs, event{p.Created, evArrive, i})
		if !p.Deletes {
			continue
		}
		deletes = true
		if p.Deleted > p.Created {
			evs = append(evs, event{p.Deleted, evDepart, i})
		} else {
			evs = append(evs, event{p.Created, evDepartAtOnce, i})
		}
	}
	if !deletes {
		return nil, errors.New("departures: the pod list has no deletion_time")
	}
	sort.Slice(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.time != b.time {
			return a.time < b.time
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.pod < b.pod
	})
	return evs, nil
}

// sampleTimes returns n evenly spaced times from first to last, both
// included (one time when n <= 1 or first == last).
func sampleTimes(first, last int64, n int) []int64 {
	if n <= 1 || last <= first {
		return []int64{last}
	}
	out := make([]int64, n)
	for j := range out {
		out[j] = first + (last-first)*int64(j)/int64(n-1)
	}
	return out
}

// Departures replays the pod list on its own timeline instead of the
// published protocol: pods in creation_time order (no shuffle, no
// resampling), each placed at its creation as Simulate places a pod (the
// same allocator code, the learning policy observing it first); a pod that
// fits no node then is dropped and counted as failed (not retried); at its
// deletion_time a placed pod's GPU and CPU are freed. A pod without a
// deletion time never leaves. The seed only breaks ties between nodes.
// samples is the number of evenly spaced sample times (DefaultSamples when
// <= 0). The offline reference has no timeline and is refused.
func Departures(ctx context.Context, cfg Config, samples int) (*DepartureRun, error) {
	if cfg.Policy == PolicyOffline {
		return nil, fmt.Errorf("departures: the %s reference has no timeline", PolicyOffline)
	}
	if samples <= 0 {
		samples = DefaultSamples
	}
	evs, err := timeline(cfg.Pods)
	if err != nil {
		return nil, err
	}
	um, err := newUnitMap(cfg.Units)
	if err != nil {
		return nil, err
	}
	s, err := cfg.newState(um)
	if err != nil {
		return nil, err
	}
	if s.capacity == 0 {
		return nil, errors.New("departures: cluster has no GPU")
	}
	lastArrival := int64(0)
	for _, e := range evs {
		if e.kind == evArrive {
			lastArrival = e.time
		}
	}
	times := sampleTimes(evs[0].time, lastArrival, samples)
	run := &DepartureRun{Policy: cfg.Policy, Seed: cfg.Seed, Units: um.name, Pods: len(cfg.Pods)}
	placed := make([]*placement, len(cfg.Pods))
	running := 0
	for i, e := range evs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("departures stopped: %w", err)
			}
		}
		for len(run.Samples) < len(times) && e.time > times[len(run.Samples)] {
			run.Samples = append(run.Samples, s.sample(times[len(run.Samples)], running, run.Failed))
		}
		if len(run.Samples) == len(times) {
			break
		}
		pod := cfg.Pods[e.pod]
		switch e.kind {
		case evArrive:
			start := time.Now()
			pl, ok := s.placeOn(pod, true)
			run.PlaceTime += time.Since(start)
			if !ok {
				run.Failed++
				run.FailedGPUs += float64(pod.GPUDemand()) / trace.MilliPerGPU
				continue
			}
			run.Placed++
			running++
			placed[e.pod] = &pl
			run.PeakAlloc = max(run.PeakAlloc, s.allocPct())
		default:
			if pl := placed[e.pod]; pl != nil {
				s.apply(*pl, -1)
				placed[e.pod] = nil
				running--
			}
		}
	}
	for len(run.Samples) < len(times) {
		run.Samples = append(run.Samples, s.sample(times[len(run.Samples)], running, run.Failed))
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	for _, x := range run.Samples {
		run.MeanAlloc += x.Alloc / float64(len(run.Samples))
		run.MeanPartlyFree += x.PartlyFree / float64(len(run.Samples))
	}
	run.FinalAlloc = run.Samples[len(run.Samples)-1].Alloc
	return run, nil
}

// sample reads the cluster now.
func (s *state) sample(t int64, running, failed int) Sample {
	var partly float64
	gpus := 0
	for _, n := range s.nodes {
		partly += allocator.PartlyFree(n)
		gpus += len(n.Devices)
	}
	return Sample{Time: t, Alloc: s.allocPct(), PartlyFree: 100 * partly / float64(max(gpus, 1)), Running: running, Failed: failed}
}

// Line is the run's summary line.
func (r *DepartureRun) Line(traceName string) string {
	return fmt.Sprintf("DEPARTURES policy=%s trace=%s units=%s seed=%d pods=%d placed=%d failed=%d failed_gpus=%.2f peak_alloc=%.2f mean_alloc=%.2f final_alloc=%.2f mean_partly_free=%.2f",
		r.Policy, traceName, r.Units, r.Seed, r.Pods, r.Placed, r.Failed, r.FailedGPUs, r.PeakAlloc, r.MeanAlloc, r.FinalAlloc, r.MeanPartlyFree)
}
