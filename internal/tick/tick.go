// Package tick runs periodic work on a clock's ticker, so that the loops of
// the extender and the device plugin stop the same way and tests drive
// them with a fake clock.
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
