package web

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// goVersion is the Go release the binary was built with.
var goVersion = runtime.Version()

// runtimeSamples are the runtime/metrics values we export; reading them
// does not stop the world.
var runtimeSamples = []string{
	"/sched/goroutines:goroutines",
	"/sched/gomaxprocs:threads",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/total:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/heap/objects:objects",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
}

// writeRuntime writes a small set of Go runtime and process metrics, named
// as client_golang names them so that existing dashboards work.
func writeRuntime(e *expo, start time.Time) {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) float64 {
		switch s[i].Value.Kind() {
		case metrics.KindUint64:
			return float64(s[i].Value.Uint64())
		case metrics.KindFloat64:
			return s[i].Value.Float64()
		}
		return 0 // not supported by this Go version
	}
	e.single("go_goroutines", "gauge", "Number of goroutines that currently exist.", v(0))
	e.single("go_sched_gomaxprocs_threads", "gauge", "GOMAXPROCS: threads that can execute Go code at once.", v(1))
	e.single("go_memstats_heap_inuse_bytes", "gauge", "Bytes in in-use heap spans.", v(2)+v(3))
	e.single("go_memstats_sys_bytes", "gauge", "Bytes of memory obtained from the OS by the Go runtime.", v(4))
	e.single("go_memstats_alloc_bytes_total", "counter", "Bytes allocated on the heap since start.", v(5))
	e.single("go_memstats_heap_objects", "gauge", "Live and not yet swept heap objects.", v(6))
	e.single("go_memstats_next_gc_bytes", "gauge", "Heap size goal of the next garbage collection.", v(7))
	e.single("go_gc_cycles_total", "counter", "Completed garbage collection cycles.", v(8))

	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	e.family("go_gc_duration_seconds", "summary", "Stop-the-world pause durations of the garbage collector (recent cycles).")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		e.sample("go_gc_duration_seconds", gc.PauseQuantiles[i].Seconds(), label{"quantile", q})
	}
	e.sample("go_gc_duration_seconds_sum", gc.PauseTotal.Seconds())
	e.sample("go_gc_duration_seconds_count", float64(gc.NumGC))

	e.family("go_info", "gauge", "Information about the Go environment.")
	e.sample("go_info", 1, label{"version", goVersion})

	if p, ok := readProc(); ok {
		e.single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes (/proc/self/statm).", float64(p.resident))
		e.single("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes (/proc/self/statm).", float64(p.virtual))
		e.single("process_open_fds", "gauge", "Number of open file descriptors.", float64(p.fds))
	}
	e.single("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.", unixSeconds(start))
}

// procStats are the process figures read from /proc.
type procStats struct {
	resident, virtual int64 // bytes
	fds               int
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
