package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100
// on every Linux architecture Go supports).
const clockTicks = 100

// procStats is what /proc says of a process.
type procStats struct {
	// PeakRSSMiB is VmHWM, the resident set's high-water mark; RSSMiB is
	// VmRSS now.
	PeakRSSMiB, RSSMiB float64
	// CPUSeconds is user + system time so far.
	CPUSeconds float64
}

// readProc reads pid's memory and CPU time.
// procEnv returns the value of the environment variable name that process
// pid started with ("" when unset).
func procEnv(pid int, name string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, nil
		}
	}
	return "", nil
}

func readProc(pid int) (procStats, error) {
	var s procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmHWM:":
			s.PeakRSSMiB = kib / 1024
		case "VmRSS:":
			s.RSSMiB = kib / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("process %d: short stat %q", pid, stat)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("process %d: stat times %q %q", pid, f[11], f[12])
	}
	s.CPUSeconds = (ut + st) / clockTicks
	return s, nil
}

// histogram is a cumulative histogram: counts[i] observations <= bounds[i].
type histogram struct {
	bounds []float64
	counts []float64
	count  float64
}

// histogramOf returns the sum of the histograms of family name that carry
// the given labels (an empty histogram when none does). The series of one
// family share their buckets; a series with other buckets is skipped.
func histogramOf(mf map[string]*dto.MetricFamily, name string, labels map[string]string) histogram {
	var h histogram
	fam := mf[name]
	if fam == nil {
		return h
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) || m.GetHistogram() == nil {
			continue
		}
		buckets := m.GetHistogram().GetBucket()
		if h.bounds == nil {
			for _, b := range buckets {
				h.bounds = append(h.bounds, b.GetUpperBound())
			}
			h.counts = make([]float64, len(buckets))
		}
		if !sameBounds(h.bounds, buckets) {
			continue
		}
		for i, b := range buckets {
			h.counts[i] += float64(b.GetCumulativeCount())
		}
		h.count += float64(m.GetHistogram().GetSampleCount())
	}
	return h
}

func sameBounds(bounds []float64, buckets []*dto.Bucket) bool {
	if len(bounds) != len(buckets) {
		return false
	}
	for i, b := range buckets {
		if b.GetUpperBound() != bounds[i] {
			return false
		}
	}
	return true
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// sum adds the values of every gauge series of family name.
func sum(mf map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range mf[name].GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

// minus is h's observations since before (same buckets).
func (h histogram) minus(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: append([]float64(nil), h.counts...), count: h.count - before.count}
	if len(before.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile by linear interpolation inside the
// bucket that holds it, as Prometheus's histogram_quantile does (the first
// bucket's lower bound is 0). It returns NaN for an empty histogram and
// +Inf when the quantile lies above the largest finite bound.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	if i == len(h.counts) || math.IsInf(h.bounds[i], 1) {
		return math.Inf(1)
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = h.bounds[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in == 0 {
		return h.bounds[i]
	}
	return lo + (h.bounds[i]-lo)*(rank-below)/in
}
