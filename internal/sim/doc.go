// Package sim owns the trace benchmark: it replays a trace workload
// (internal/trace) through the same allocator code the scheduler extender
// uses (an allocator.Fitter's Fit for the filter and GPU choice and its
// NodeScore for prioritize, as the extender's cache does, and the policy's
// Observer for online learning), with the published
// protocol (no departures, pods that fit nowhere are skipped), and reports
// the GPU allocation ratio against the arrived demand.
//
// It also holds the trace-only baselines (Random, the FGD paper's Best-fit)
// as allocator.Policy implementations, FGD as the paper's simulator runs it
// (PolicyFGDPaper: classes known in advance, its tie rule), the offline
// reference, the result table, and the CSV and PNG outputs.
package sim
