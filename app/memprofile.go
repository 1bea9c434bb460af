package app

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
)

// memSample names the runtime/metrics a memory report gives: where the
// process's memory goes, by the runtime's own classes.
var memSample = []struct{ name, key string }{
	{"/memory/classes/total:bytes", "total"},
	{"/memory/classes/heap/objects:bytes", "heap_objects"}, // live and not yet swept garbage
	{"/gc/heap/live:bytes", "heap_live"},                   // marked live by the last GC
	{"/memory/classes/heap/unused:bytes", "heap_unused"},
	{"/memory/classes/heap/free:bytes", "heap_free"},
	{"/memory/classes/heap/released:bytes", "heap_released"},
	{"/memory/classes/heap/stacks:bytes", "stacks"},
	{"/memory/classes/os-stacks:bytes", "os_stacks"},
	{"/memory/classes/metadata/other:bytes", "metadata_other"},
	{"/memory/classes/metadata/mspan/inuse:bytes", "mspan"},
	{"/memory/classes/metadata/mcache/inuse:bytes", "mcache"},
	{"/memory/classes/profiling/buckets:bytes", "profiling"},
	{"/memory/classes/other:bytes", "other"},
	{"/gc/stack/starting-size:bytes", "stack_starting_size"},
	{"/gc/gogc:percent", "gogc"},
	{"/sched/goroutines:goroutines", "goroutines"},
}

// memReport reads memSample as log attributes.
func memReport() []any {
	s := make([]metrics.Sample, len(memSample))
	for i, m := range memSample {
		s[i].Name = m.name
	}
	metrics.Read(s)
	attrs := make([]any, 0, 2*len(s))
	for i, m := range memSample {
		attrs = append(attrs, m.key, sampleUint64(s[i]))
	}
	return attrs
}

// watchMemProfile is the --memprofile debug option: on each SIGUSR1 the
// server logs where its memory goes (runtime/metrics, before and after a
// forced GC) and writes a heap profile (after the GC, so it is current) to
// path, replacing the previous one. It returns a function that stops
// watching.
func watchMemProfile(path string, log *slog.Logger) func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-sig:
			}
			log.Info("memory before GC", memReport()...)
			runtime.GC()
			log.Info("memory after GC", memReport()...)
			if err := writeHeapProfile(path); err != nil {
				log.Error("heap profile not written", "path", path, "err", err)
				continue
			}
			log.Info("heap profile written", "path", path)
		}
	}()
	return func() {
		signal.Stop(sig)
		close(quit)
		<-done
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
