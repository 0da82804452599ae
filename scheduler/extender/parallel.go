package extender

import (
	"runtime"
	"sync"
)

// minChunk is the fewest nodes worth a goroutine of their own.
const minChunk = 512

// parallelize splits [0, n) into contiguous chunks, one per available CPU,
// and runs work on them concurrently. Each index is visited exactly once, so
// work may write to per-index slots without locking.
func parallelize(n int, work func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+minChunk-1)/minChunk)
	if workers <= 1 {
		work(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() { work(lo, hi) })
	}
	wg.Wait()
}
