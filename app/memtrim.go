package app

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory trimming: the servers run with a high GOGC (servers.toml gives the
// demo 400), which lets the heap grow to five times what is live before a
// collection, and the runtime returns free memory to the system only down
// to about 1.1× the heap in use at the last collection, scaled by how the
// heap goal moved. After a burst (15,000 clients entering in a few
// seconds) that leaves the process holding the burst's garbage for as long
// as it stays quiet: no collection comes to free it. The trimmer watches
// for that: once a server has gone quiet (it allocated less than a
// sixteenth of its live heap over a period) while holding free and garbage
// heap of at least a quarter of what it uses (and 8 MB), it collects and
// returns the free memory at once (debug.FreeOSMemory), at most once per
// trimMinGap. A busy server keeps GOGC's trade of memory for less GC work.

const (
	trimPeriod = 5 * time.Second
	trimMinGap = 30 * time.Second
	// trimMin is the least reclaimable heap worth a forced collection.
	trimMin = 8 << 20
)

var trimMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
}

// heapState is one reading of trimMetrics.
type heapState struct{ allocs, live, objects, free uint64 }

func readHeapState(s []metrics.Sample) heapState {
	metrics.Read(s)
	return heapState{allocs: sampleUint64(s[0]), live: sampleUint64(s[1]), objects: sampleUint64(s[2]), free: sampleUint64(s[3])}
}

// sampleUint64 is a runtime/metrics reading, 0 if the runtime has no such
// uint64 metric.
func sampleUint64(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

// reclaimable is the heap a collection and a scavenge would give back:
// free spans and uncollected garbage.
func (h heapState) reclaimable() uint64 {
	garbage := uint64(0)
	if h.objects > h.live {
		garbage = h.objects - h.live
	}
	return h.free + garbage
}

// shouldTrim decides from two readings a period apart whether to return
// memory: quiet (little allocated since prev) and much to reclaim.
func shouldTrim(prev, cur heapState) bool {
	allocated := cur.allocs - prev.allocs
	return allocated < cur.live/16 && cur.reclaimable() >= max(trimMin, cur.live/4)
}

// trimMemory runs the trimmer until ctx ends.
func trimMemory(ctx context.Context, log *slog.Logger) {
	s := make([]metrics.Sample, len(trimMetrics))
	for i, name := range trimMetrics {
		s[i].Name = name
	}
	t := time.NewTicker(trimPeriod)
	defer t.Stop()
	prev := readHeapState(s)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := readHeapState(s)
		if shouldTrim(prev, cur) && time.Since(last) >= trimMinGap {
			start := time.Now()
			debug.FreeOSMemory()
			last = time.Now()
			after := readHeapState(s)
			log.Debug("quiet: returned free memory to the system", "reclaimable_before", cur.reclaimable(),
				"live", after.live, "took", last.Sub(start))
			cur = after
		}
		prev = cur
	}
}
