package tick

import (
	"context"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

func TestRunCallsOnEveryTickAndReturnsWhenDone(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, clk.NewTicker(time.Second), func() { calls <- struct{}{} })
	}()
	for range 3 {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(time.Second)
		<-calls
	}
	cancel()
	<-done
}
