package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

// heapWatch samples the heap while a copy runs: with a file, it writes a heap profile
// (pprof's, in-use and allocated) each time the heap in use reaches a new peak (1 MiB
// above the last one written), so the file ends with the profile of the peak. At the
// end, report prints the peak and the bytes allocated. It is a diagnosis tool
// (`copy --heap-profile FILE`, for the benchmark: BENCH_COPIER_ARGS), not a metric.
type heapWatch struct {
	file string
	stop chan struct{}
	wg   sync.WaitGroup

	peak, written uint64 // heap in use (HeapInuse), bytes
	alloc0        uint64 // TotalAlloc at the start
	err           error
}

func watchHeap(file string) *heapWatch {
	h := &heapWatch{file: file, stop: make(chan struct{})}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.alloc0 = ms.TotalAlloc
	h.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			h.sample()
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	})
	return h
}

func (h *heapWatch) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse <= h.peak {
		return
	}
	h.peak = ms.HeapInuse
	if h.file == "" || h.err != nil || h.peak < h.written+1<<20 {
		return
	}
	h.written = h.peak
	f, err := os.Create(h.file)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	h.err = err
}

// report stops the sampling and prints the figures to w.
func (h *heapWatch) report(w io.Writer) {
	close(h.stop)
	h.wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "heap: peak in use %.1f MiB, allocated %.1f MiB, %d GCs, heap from the OS %.1f MiB, stacks %.1f MiB, runtime total %.1f MiB\n",
		mib(h.peak), mib(ms.TotalAlloc-h.alloc0), ms.NumGC, mib(ms.HeapSys), mib(ms.StackSys), mib(ms.Sys))
	if h.err != nil {
		fmt.Fprintf(w, "heap profile %s: %v\n", h.file, h.err)
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
