// Package cli is the start-up every gpuslice main shares: a flag set with
// --version, the component-base log flags, a context that ends on SIGINT or
// SIGTERM and carries a named logger, and the exit status convention (0 ok,
// 1 the command failed, 2 bad usage).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/gpuslice/gpuslice/internal/version"
)

// Exit statuses of Execute.
const (
	ExitOK      = 0
	ExitFailed  = 1
	ExitUsage   = 2
	versionFlag = "version"
	// logFormatFlag is one of the flags logsapi.AddFlags registers.
	logFormatFlag = "logging-format"
)

// Command is one gpuslice binary.
type Command struct {
	// Name is the binary's name: the flag set's and the logger's.
	Name string
	// Logs, when set, is the component-base logging configuration, applied
	// after parsing. Its flags are added unless AddFlags registered them
	// already (options that own their logging configuration do).
	Logs *logsapi.LoggingConfiguration
	// AddFlags registers the command's own flags.
	AddFlags func(fs *pflag.FlagSet)
	// Run runs the command with the parsed flag set (for fs.Changed). ctx
	// ends on SIGINT or SIGTERM and carries the command's logger. An error
	// wrapped by Usage exits 2, any other exits 1.
	Run func(ctx context.Context, fs *pflag.FlagSet) error
}

// usageError marks an error in the command line or the options.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Usage marks err as a usage error: Execute prints it and exits 2.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// Main runs c with the process's arguments and exits with its status.
func Main(c Command) {
	os.Exit(c.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Execute parses args, handles --help and --version, applies the log flags,
// and runs the command until it returns or a signal arrives. It returns the
// exit status.
func (c Command) Execute(parent context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	if c.AddFlags != nil {
		c.AddFlags(fs)
	}
	showVersion := fs.Bool(versionFlag, false, "Print the version and exit.")
	if c.Logs != nil && fs.Lookup(logFormatFlag) == nil {
		logsapi.AddFlags(c.Logs, fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintln(stderr, err)
		return ExitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return ExitOK
	}
	if c.Logs != nil {
		if err := logsapi.ValidateAndApply(c.Logs, nil); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitUsage
		}
	}
	ctx, stop := SignalContext(parent)
	defer stop()
	logger := klog.Background().WithName(c.Name)
	ctx = klog.NewContext(ctx, logger)
	err := c.Run(ctx, fs)
	var usage usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "invalid options:\n%v\n", usage.err)
		return ExitUsage
	}
	logger.Error(err, "Command failed")
	klog.Flush()
	return ExitFailed
}

// SignalContext returns a context that ends on SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}
