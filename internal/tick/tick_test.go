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

func TestGoRunsUntilStop(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	calls := make(chan struct{})
	l := Go(t.Context(), clk.NewTicker(time.Second), func(ctx context.Context) {
		if ctx.Err() != nil {
			t.Error("f called on an ended context")
		}
		calls <- struct{}{}
	})
	clk.Step(time.Second)
	<-calls
	l.Stop()
}
