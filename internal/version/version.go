// Package version holds the gpuslice build version, set at link time.
package version

// Version is set with -ldflags "-X github.com/gpuslice/gpuslice/internal/version.Version=...".
var Version = "dev"
