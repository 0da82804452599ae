// Package tick runs periodic work on a clock's ticker, in the caller's
// goroutine (Run) or in one of its own until stopped (Go), so that the
// loops of the extender and the device plugin stop the same way and tests
// drive them with a fake clock.
package tick

import (
	"context"

	"k8s.io/utils/clock"
)

// Run calls f at every tick of t until ctx is done, then stops t.
func Run(ctx context.Context, t clock.Ticker, f func()) {
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f()
		}
	}
}

// Loop is Run in a goroutine of its own, until Stop.
type Loop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Go runs Run in a goroutine of its own on a context that ends with ctx or
// with Stop; f gets that context.
func Go(ctx context.Context, t clock.Ticker, f func(ctx context.Context)) *Loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &Loop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		Run(ctx, t, func() { f(ctx) })
	}()
	return l
}

// Stop ends the loop and waits until it has returned.
func (l *Loop) Stop() {
	l.cancel()
	<-l.done
}
