// Package app wires the gpuslice scheduler extender: its Options (flags and
// defaults), the Complete/Validate step after flag parsing, and Run, which
// builds the API client, the informers, the cache and the HTTP server.
// cmd/gpuslice-extender only parses flags into Options and calls Run.
package app
