// Package app wires the gpuslice scheduler extender: its Options (flags and
// defaults, options.go; leader election, leader.go), the Complete/Validate
// step after flag parsing, and Run (run.go), which builds the API client and
// the listener and calls Serve (serve.go): the informers (informers.go), the
// cache, the extender and the HTTP(S) server with its timeouts and mutual
// TLS (server.go), and, with --leader-elect, the Lease campaign
// (election.go). cmd/gpuslice-extender only parses flags into Options and
// calls Run.
package app
