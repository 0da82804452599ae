// Package kubectl owns the logic of the kubectl-gpuslice plugin
// (cmd/kubectl-gpuslice): what it reads from the API server, the reports it
// builds and how it prints them.
//
//   - inspect: per node and GPU, the slices, core and slots used and free
//     (internal/inspect's accounting, which follows the one charge rule
//     api.PodCharge, each share charged as its GPU charges it: a whole
//     instance on vgpu and passthrough GPUs), the pods holding them, each
//     GPU's isolation mode (with the vGPU type and instance size of
//     whole-instance GPUs) and what it enforces, unhealthy GPUs with their reason, pods whose
//     placement is stale (no allocation record yet, or one that disagrees
//     with the placement), and a cluster summary with a fragmentation
//     figure. Output is a table (with a usage bar per GPU, coloured only on a
//     terminal), a wide table, JSON or YAML.
//   - explain: why a pending gpuslice pod is not placed. It feeds the same
//     nodes and pods into the extender's own cache (scheduler/cache), fits
//     the pod's request (api.ParsePodRequest, with the VM-sandbox mode of
//     its runtime class under --runtime-class-isolation, as the extender
//     does) on every node with the pure allocator, and groups the nodes by
//     the reason they were refused.
//   - defrag --dry-run: the pod moves that would free the most whole GPUs
//     (allocator.Defrag on the nodes and placed pods as the extender charges
//     them, kube-scheduler's cordon, taint and nodeSelector filters keeping
//     pods off destinations), as a table of moves and a summary, JSON or
//     YAML. It evicts nothing and refuses to run without --dry-run.
//
// All three work from the API server alone (node inventories, pods' placement
// and allocation annotations); none needs the extender's endpoint. The
// commands take a kubernetes.Interface, so tests run them on a fake
// clientset, and a clock, so ages in the output are reproducible.
package kubectl
