// Package tools pins the linters `make lint` runs (golangci-lint and
// logcheck) as Go tool dependencies, so a fresh machine builds the exact same
// versions from the module proxy. It holds no code.
package tools
